import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openAuditLog } from "../../src/audit/open.js";
import { main } from "../../src/cli.js";
import { auditSchema } from "../../src/config/audit-schema.js";
import { loadGatewayConfig } from "../../src/config/load.js";
import { startRuntime } from "../../src/server/runtime.js";
import { testLogger } from "../helpers/logger.js";
import { createDeployment, type Deployment } from "../helpers/deployment.js";

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString()));
  stderr.on("data", (c: Buffer) => (err += c.toString()));
  const code = await main(argv, { stdout, stderr });
  return { code, out, err };
}

describe("portcullis CLI (in process, real files)", () => {
  let d: Deployment;
  beforeEach(() => {
    d = createDeployment();
  });
  afterEach(() => d.cleanup());

  it("validate lists connectors with their tool counts", async () => {
    const { code, out } = await run("validate", "--config", d.configPath);
    expect(code).toBe(0);
    expect(out).toMatch(/ok +inv \(sql, .*inv\.json\): 3 tools/);
    expect(out).toContain("3 tools from 1 connectors");
  });

  it("validate names the file, path and line of a broken connector file, exit 1", async () => {
    writeFileSync(
      join(d.dir, "connectors", "bad.json"),
      '{\n  "kind": "sql",\n  "name": "bad",\n  "engine": "oracle"\n}\n',
    );
    const { code, err } = await run("validate", "--config", d.configPath);
    expect(code).toBe(1);
    expect(err).toMatch(/connectors\/bad\.json:4:\d+ at engine: /);
  });

  it("validate --probe reports an unreachable upstream, exit 1", async () => {
    d.write("connectors/pg.json", {
      kind: "sql",
      name: "pg",
      engine: "postgres",
      url: "postgres://nobody@127.0.0.1:9/none",
      query: { enabled: true },
    });
    const { code, out } = await run("validate", "--probe", "--config", d.configPath);
    expect(code).toBe(1);
    expect(out).toMatch(/pg \(sql.*UNREACHABLE/);
    expect(out).toMatch(/ok +inv \(sql.*reachable/);
  });

  it("tools prints the local identity's view", async () => {
    const { code, out } = await run("tools", "--config", d.configPath);
    expect(code).toBe(0);
    expect(out).toContain("identity: tester@example.com (scopes: tester)");
    expect(out).toMatch(/inv__get_item +read-only,idempotent +One item by SKU\./);
    expect(out).toMatch(/inv__set_qty +writes,destructive,idempotent/);
  });

  it("connectors add validates like startup, refuses a broken definition and changes nothing", async () => {
    const bad = join(d.dir, "bad-def.json");
    writeFileSync(
      bad,
      JSON.stringify({
        kind: "sql",
        name: "more",
        engine: "sqlite",
        file: "../data/inventory.db",
        tools: [{ name: "x", description: "d", statement: "SELECT :nope", readOnly: true, parameters: {} }],
      }),
    );
    const refused = await run("connectors", "add", bad, "--config", d.configPath);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("nope");
    expect(existsSync(join(d.dir, "connectors", "more.json"))).toBe(false);

    const good = join(d.dir, "good-def.json");
    writeFileSync(
      good,
      JSON.stringify({
        kind: "sql",
        name: "more",
        engine: "sqlite",
        file: "../data/inventory.db",
        query: { enabled: true },
      }),
    );
    const added = await run("connectors", "add", good, "--config", d.configPath);
    expect(added.code).toBe(0);
    expect(added.out).toContain('added connector "more"');
    const listed = await run("connectors", "list", "--config", d.configPath);
    expect(listed.out).toMatch(/^inv +sql/m);
    expect(listed.out).toMatch(/^more +sql/m);
    const removed = await run("connectors", "remove", "more", "--config", d.configPath);
    expect(removed.code).toBe(0);
    expect(existsSync(join(d.dir, "connectors", "more.json"))).toBe(false);
  });

  it("approvals approve records the decision in the audit log, by the deciding identity", async () => {
    d.write("scopes/tester.json", {
      name: "tester",
      description: "Inventory; big changes need a human.",
      tools: ["inv__get_item", { tool: "inv__set_qty", approval: { when: "qty > 100" } }],
    });
    const config = JSON.parse(readFileSync(d.configPath, "utf8")) as Record<string, unknown>;
    const runtime = await startRuntime(loadGatewayConfig(d.configPath), testLogger);
    const parked = await runtime.gateway.callTool(runtime.localIdentity!, "inv__set_qty", {
      sku: "A-1",
      qty: 500,
    });
    const approvalId = (parked._meta?.["portcullis/error"] as { approvalId: string }).approvalId;
    await runtime.close();

    // Another person decides: the local identity of this invocation is the approver.
    d.write("mcp.config.json", {
      ...config,
      identity: { local: { subject: "boss@example.com", scopes: ["approver"] } },
    });
    const { code, out } = await run("approvals", "approve", approvalId, "--config", d.configPath);
    expect(code).toBe(0);
    expect(out).toContain(`${approvalId} approved by boss@example.com`);

    const log = await openAuditLog({
      config: auditSchema.parse({}),
      dir: join(d.dir, "audit"),
      logger: testLogger,
    });
    try {
      const events = log
        .query({ type: "approval.approved", limit: 10 })
        .records.map((r) => (r.record as unknown as { event: { identity?: { subject: string } } }).event);
      expect(events.map((e) => e.identity?.subject)).toContain("boss@example.com");
    } finally {
      await log.close();
    }
  });

  it("an unknown command prints usage, exit 2", async () => {
    const { code, err } = await run("frobnicate");
    expect(code).toBe(2);
    expect(err).toContain('unknown command "frobnicate"');
  });
});
