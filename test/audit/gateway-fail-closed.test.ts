import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/config/load.js";
import type { Identity } from "../../src/core/index.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import { createDeployment, type Deployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";
import { startRecordingServer, type RecordingServer } from "../helpers/upstreams.js";

/**
 * The "Fail-closed" case through the whole pipeline: the audit store becomes unwritable
 * mid-run (another connection holds SQLite's write lock), the next call is refused with
 * AUDIT_UNAVAILABLE and its upstream is never touched; once the lock is gone, calls run again on
 * the same chain.
 */

const ordersSpec = {
  openapi: "3.0.3",
  info: { title: "orders", version: "1" },
  paths: {
    "/orders": {
      post: {
        operationId: "createOrder",
        summary: "Create an order",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: { sku: { type: "string" }, qty: { type: "integer" } },
                required: ["sku", "qty"],
              },
            },
          },
        },
        responses: {
          "201": { description: "created", content: { "application/json": { schema: { type: "object" } } } },
        },
      },
    },
  },
};

function text(result: CallToolResult): string {
  return (result.content as { type: string; text: string }[]).map((c) => c.text).join("\n");
}

describe("gateway: fail closed when the audit log cannot be written", () => {
  let deployment: Deployment;
  let upstream: RecordingServer;
  let runtime: Runtime;
  let identity: Identity;
  let auditFile: string;

  beforeAll(async () => {
    upstream = await startRecordingServer(() => ({ status: 201, json: { id: "o-1", status: "created" } }));
    deployment = createDeployment({ config: { audit: { busyTimeoutMs: 150, origin: "gateway-fail-closed.test/audit" } } });
    mkdirSync(join(deployment.dir, "connectors", "specs"));
    deployment.write("connectors/specs/orders.json", ordersSpec);
    deployment.write("connectors/orders.json", {
      kind: "rest",
      name: "orders",
      spec: "specs/orders.json",
      baseUrl: upstream.url,
    });
    deployment.write("scopes/tester.json", { name: "tester", description: "Everything.", tools: ["*"] });
    runtime = await startRuntime(loadGatewayConfig(deployment.configPath), testLogger);
    identity = runtime.localIdentity!;
    auditFile = join(deployment.dir, "audit", "audit.db");
  });

  afterAll(async () => {
    await runtime?.close();
    await upstream?.close();
    deployment?.cleanup();
  });

  const qtyOf = (sku: string): number => {
    const db = new Database(deployment.dbFile, { readonly: true });
    try {
      return db.prepare<[string], { qty: number }>("SELECT qty FROM items WHERE sku = ?").get(sku)!.qty;
    } finally {
      db.close();
    }
  };

  it("refuses calls while the store is locked, never reaching the upstream, and recovers on the same chain", async () => {
    const log = runtime.governance.auditLog!;
    const ok = await runtime.gateway.callTool(identity, "orders__createOrder", { body: { sku: "A-1", qty: 1 } });
    expect(ok.isError, text(ok)).toBeFalsy();
    expect(upstream.requests).toHaveLength(1);
    const sizeBefore = log.size();

    const locker = new Database(auditFile, { timeout: 1_000 });
    locker.exec("BEGIN EXCLUSIVE");
    try {
      const refused = await runtime.gateway.callTool(identity, "orders__createOrder", { body: { sku: "B-2", qty: 5 } });
      expect(refused.isError).toBe(true);
      expect(text(refused)).toMatch(/^AUDIT_UNAVAILABLE: /);
      expect(text(refused)).not.toMatch(/audit\.db|SQLITE|at .*\.ts/);
      // The REST upstream was never called.
      expect(upstream.requests).toHaveLength(1);

      // The SQL upstream: an UPDATE that would have run did not.
      const update = await runtime.gateway.callTool(identity, "inv__set_qty", { sku: "C-3", qty: 0 });
      expect(update.isError).toBe(true);
      expect(text(update)).toMatch(/^AUDIT_UNAVAILABLE: /);
      expect(qtyOf("C-3")).toBe(12);
      expect(log.health().ok).toBe(false);
    } finally {
      locker.exec("ROLLBACK");
      locker.close();
    }

    const again = await runtime.gateway.callTool(identity, "orders__createOrder", { body: { sku: "B-2", qty: 5 } });
    expect(again.isError, text(again)).toBeFalsy();
    expect(upstream.requests).toHaveLength(2);
    expect(JSON.parse(upstream.requests[1]!.body)).toEqual({ sku: "B-2", qty: 5 });
    const update = await runtime.gateway.callTool(identity, "inv__set_qty", { sku: "C-3", qty: 0 });
    expect(update.isError, text(update)).toBeFalsy();
    expect(qtyOf("C-3")).toBe(0);
    expect(log.health().ok).toBe(true);

    // Nothing of the refused calls reached the log; the two calls after it did, chained on.
    const records = log.query({ order: "asc", limit: 1000, cursor: String(sizeBefore - 1) }).records;
    expect(records.map((r) => `${r.record.event.type} ${String(r.record.event.tool)}`)).toEqual([
      "call.intent orders__createOrder",
      "call.outcome orders__createOrder",
      "call.intent inv__set_qty",
      "call.outcome inv__set_qty",
    ]);
    expect(records[0]!.seq).toBe(sizeBefore);
    expect(records[0]!.record.prev).toBe(log.record(sizeBefore - 1)!.hash);
    const report = await log.verify();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
