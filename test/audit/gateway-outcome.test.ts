import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
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

async function start(outcomeBeforeAnswer?: boolean): Promise<{ runtime: Runtime; auditFile: string }> {
  const deployment = createDeployment({
    config: {
      audit: {
        origin: "gateway-outcome.test/audit",
        ...(outcomeBeforeAnswer === undefined ? {} : { outcomeBeforeAnswer }),
      },
    },
  });
  cleanups.push(() => deployment.cleanup());
  const runtime = await startRuntime(loadGatewayConfig(deployment.configPath), testLogger);
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
});
