import { spawn } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterEach, describe, expect, it } from "vitest";
import { openAuditReader } from "../../src/audit/open.js";
import { loadGatewayConfig } from "../../src/config/load.js";
import { startRuntime } from "../../src/server/runtime.js";
import { cliCommand, createDeployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";

/**
 * The "Crash" case against the real gateway process: several MCP clients call tools over
 * Streamable HTTP, the gateway is killed with SIGKILL mid-load, and afterwards the log verifies and
 * holds an intent record for every call whose result a client received. With
 * audit.outcomeBeforeAnswer it also holds each such call's outcome record; without it (the default:
 * the outcome is committed right after the answer is sent) only a call answered in the very turn the
 * process died may lack its outcome record: at most the last answered call of each client.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const CLIENTS = 4;
const KILL_AFTER = 300;

describe.each([
  { outcomeBeforeAnswer: true, promise: "intent and outcome records" },
  { outcomeBeforeAnswer: false, promise: "an intent record, and an outcome record unless it was its client's last" },
])("gateway: kill -9 under load, audit.outcomeBeforeAnswer $outcomeBeforeAnswer", ({ outcomeBeforeAnswer, promise }) => {
  it(`after restart the log verifies and every call that returned a result has ${promise}`, async () => {
    const deployment = createDeployment({
      config: {
        audit: {
          origin: "gateway-crash.test/audit",
          checkpoint: { everyRecords: 64, everyMs: 200 },
          outcomeBeforeAnswer,
        },
      },
    });
    cleanups.push(() => deployment.cleanup());
    const { command, args } = cliCommand("serve", "--http", "--config", deployment.configPath);
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    let stderr = "";
    const url = await new Promise<URL>((resolve, reject) => {
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /Streamable HTTP at (\S+)/.exec(stderr);
        if (m) resolve(new URL(m[1]!));
      });
      child.on("exit", () => reject(new Error(`gateway exited early: ${stderr.slice(0, 2000)}`)));
    });

    const returned: string[] = [];
    const lastReturned = new Set<string>();
    const errors: string[] = [];
    let killed = false;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      child.kill("SIGKILL");
    };
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = new Client({ name: "crash-test", version: "1.0.0" });
        await client.connect(new StreamableHTTPClientTransport(url));
        cleanups.push(() => client.close().catch(() => undefined));
        return client;
      }),
    );
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = 0; !killed; i++) {
          // A value unique to this call: it is how the call is found in the log afterwards.
          const sku = `k${c}-${i}`;
          let result;
          try {
            result = await client.callTool({ name: "inv__get_item", arguments: { sku } });
          } catch {
            if (killed) return; // in flight when the process died: no result was returned
            throw new Error(`call ${sku} failed before the kill: ${stderr.slice(0, 2000)}`);
          }
          if (result.isError) errors.push(`${sku}: ${JSON.stringify(result.content)}`);
          else {
            returned.push(sku);
            lastReturned.delete(`k${c}-${i - 1}`);
            lastReturned.add(sku);
          }
          if (returned.length >= KILL_AFTER) kill();
        }
      }),
    );
    expect(await exited).toBe("SIGKILL");
    expect(errors).toEqual([]);
    expect(returned.length).toBeGreaterThanOrEqual(KILL_AFTER);

    const loaded = loadGatewayConfig(deployment.configPath);
    const reader = openAuditReader({ config: loaded.config.audit, dir: loaded.auditDir });
    const report = await reader.verify();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    const intents = new Map<string, string>();
    const outcomes = new Map<string, string>();
    for (const row of reader.rawRecords()) {
      const { event } = JSON.parse(row.body.toString("utf8")) as {
        event: { type: string; callId?: string; arguments?: { sku?: string }; outcome?: { status: string } };
      };
      if (event.type === "call.intent" && event.arguments?.sku !== undefined) intents.set(event.arguments.sku, event.callId!);
      if (event.type === "call.outcome") outcomes.set(event.callId!, event.outcome!.status);
    }
    const size = reader.size();
    await reader.close();
    const missingIntent = returned.filter((sku) => !intents.has(sku));
    const missingOutcome = returned.filter((sku) => outcomes.get(intents.get(sku)!) !== "ok");
    expect(missingIntent).toEqual([]);
    if (outcomeBeforeAnswer) expect(missingOutcome).toEqual([]);
    else expect(missingOutcome.filter((sku) => !lastReturned.has(sku))).toEqual([]);

    // The gateway starts again on the same log and chains on.
    const runtime = await startRuntime(loaded, testLogger);
    try {
      const after = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "A-1" });
      expect(after.isError).toBeFalsy();
      const log = runtime.governance.auditLog!;
      expect(log.size()).toBe(size + 2);
      const reopened = await log.verify();
      expect(reopened.failures).toEqual([]);
      expect(reopened.ok).toBe(true);
    } finally {
      await runtime.close();
    }
  }, 120_000);
});
