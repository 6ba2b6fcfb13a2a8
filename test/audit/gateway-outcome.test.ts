import { createHash } from "node:crypto";
import { join } from "node:path";
import { Writable } from "node:stream";
import Database from "better-sqlite3";
import canonicalize from "canonicalize";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadGatewayConfig } from "../../src/config/load.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import { createDeployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";

/**
 * When a call's outcome record becomes durable relative to its answer (audit.outcomeBeforeAnswer).
 * The store is read through a second, plain SQLite connection, as another process would see it:
 * a record is there only once its transaction committed.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function start(
  outcomeBeforeAnswer?: boolean,
  logger = testLogger,
): Promise<{ runtime: Runtime; auditFile: string }> {
  const deployment = createDeployment({
    config: {
      audit: {
        origin: "gateway-outcome.test/audit",
        ...(outcomeBeforeAnswer === undefined ? {} : { outcomeBeforeAnswer }),
      },
    },
  });
  cleanups.push(() => deployment.cleanup());
  const runtime = await startRuntime(loadGatewayConfig(deployment.configPath), logger);
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await runtime.close();
  });
  const close = runtime.close.bind(runtime);
  runtime.close = async () => {
    closed = true;
    await close();
  };
  return { runtime, auditFile: join(deployment.dir, "audit", "audit.db") };
}

/** The committed records of the call whose intent carries `sku`, as another connection sees them. */
function committed(auditFile: string, sku: string): string[] {
  const db = new Database(auditFile, { readonly: true });
  try {
    const intent = db
      .prepare<[], { call_id: string; body: Buffer }>("SELECT call_id, body FROM records WHERE type = 'call.intent'")
      .all()
      .find((r) => r.body.toString("utf8").includes(`"sku":"${sku}"`));
    if (!intent) return [];
    return db
      .prepare<[string], { type: string }>("SELECT type FROM records WHERE call_id = ? ORDER BY seq")
      .all(intent.call_id)
      .map((r) => r.type);
  } finally {
    db.close();
  }
}

describe("audit: the outcome record and the answer", () => {
  it("by default answers before the outcome record's commit, which follows at once", async () => {
    const { runtime, auditFile } = await start();
    const result = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "A-1" });
    expect(result.isError).toBeFalsy();
    // The answer is here; the outcome record is queued, not yet committed. The intent is.
    expect(committed(auditFile, "A-1")).toEqual(["call.intent"]);
    await runtime.gateway.settled();
    expect(committed(auditFile, "A-1")).toEqual(["call.intent", "call.outcome"]);
  });

  it("with outcomeBeforeAnswer the outcome record is committed before the answer", async () => {
    const { runtime, auditFile } = await start(true);
    const result = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "A-1" });
    expect(result.isError).toBeFalsy();
    expect(committed(auditFile, "A-1")).toEqual(["call.intent", "call.outcome"]);
  });

  it("reads through the gateway's own audit log see the outcome right after the answer", async () => {
    const { runtime } = await start();
    await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "B-2" });
    const log = runtime.governance.auditLog!;
    const last = log.query({ order: "desc", limit: 2 }).records.map((r) => r.record.event.type);
    expect(last).toEqual(["call.outcome", "call.intent"]);
  });

  it("a shutdown right after the answer still commits the outcome record", async () => {
    const { runtime, auditFile } = await start();
    const result = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "C-3" });
    expect(result.isError).toBeFalsy();
    await runtime.close();
    expect(committed(auditFile, "C-3")).toEqual(["call.intent", "call.outcome"]);
  });

  it("a call alone commits its intent at once; calls in flight together share commits", async () => {
    const { runtime } = await start();
    const append = vi.spyOn(runtime.governance.auditLog!, "append");
    const intents = () =>
      append.mock.calls.filter(([event]) => event.type === "call.intent").map(([, options]) => options);
    await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "E-1" });
    expect(intents()).toEqual([{ now: true }]);
    append.mockClear();
    const both = await Promise.all([
      runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "E-2" }),
      runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "E-3" }),
    ]);
    expect(both.map((r) => r.isError ?? false)).toEqual([false, false]);
    expect(intents()).toEqual([{ now: false }, { now: false }]);
  });

  it("the outcome record's fsync may wait for the next record's, unless the answer waits for it", async () => {
    for (const outcomeBeforeAnswer of [false, true]) {
      const { runtime } = await start(outcomeBeforeAnswer);
      const appendLater = vi.spyOn(runtime.governance.auditLog!, "appendLater");
      const result = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "U-1" });
      expect(result.isError).toBeFalsy();
      await runtime.gateway.settled();
      expect(appendLater.mock.calls.map(([, options]) => options)).toEqual([{ unhurried: !outcomeBeforeAnswer }]);
      expect(appendLater.mock.calls[0]![0]().type).toBe("call.outcome");
      await runtime.close();
    }
  });

  it("the outcome record, built after the answer, holds the result's digest and the latency at answer time", async () => {
    const { runtime } = await start();
    const before = performance.now();
    const result = await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "D-4" });
    const elapsed = performance.now() - before;
    expect(result.isError).toBeFalsy();
    // Work done after the answer must not count towards the recorded latency.
    await new Promise((r) => setTimeout(r, 50));
    const log = runtime.governance.auditLog!;
    const [outcome, intent] = log.query({ order: "desc", limit: 2 }).records.map((r) => r.record.event);
    expect(intent!.type).toBe("call.intent");
    expect(outcome!.type).toBe("call.outcome");
    expect(outcome!.callId).toBe(intent!.callId);
    expect(outcome!.toolHash).toBe(intent!.toolHash);
    const digested = result.structuredContent ?? result.content;
    const expected = createHash("sha256").update(canonicalize(digested)!).digest("hex");
    const recorded = outcome!.outcome as { status: string; latencyMs: number; resultDigest: string };
    expect(recorded.status).toBe("ok");
    expect(recorded.resultDigest).toBe(`sha256:${expected}`);
    expect(recorded.latencyMs).toBeGreaterThan(0);
    expect(recorded.latencyMs).toBeLessThanOrEqual(elapsed);
  });

  it("logs each call's \"call done\" line with its call id, after the answer", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line));
        cb();
      },
    });
    const { runtime } = await start(undefined, pino({ level: "info" }, sink));
    await runtime.gateway.callTool(runtime.localIdentity!, "inv__get_item", { sku: "E-5" });
    const done = () => lines.filter((l) => l.msg === "call done");
    // The answer came first; the line follows on the next turn of the event loop.
    expect(done()).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(done()).toHaveLength(1);
    const callId = runtime.governance.auditLog!.query({ order: "desc", limit: 1 }).records[0]!.record.event.callId;
    expect(done()[0]).toMatchObject({ callId, isError: false });
    expect(typeof done()[0]!.latencyMs).toBe("number");
  });
});
