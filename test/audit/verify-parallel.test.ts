import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { leafHash } from "../../src/audit/hash.js";
import { openAuditLog, openAuditReader } from "../../src/audit/open.js";
import { SqliteAuditStore } from "../../src/audit/store.js";
import { startWorker, verifyParallel } from "../../src/audit/verify-parallel.js";
import { verifySegment, type SegmentResult, type SegmentTask } from "../../src/audit/verify-segment.js";
import type { VerifyReport } from "../../src/audit/verify.js";
import type { AuditEvent } from "../../src/core/governance.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

/**
 * Verification on worker threads, forced on small logs with tiny segments (2^6 records) so that
 * segment borders, upper Merkle levels and checkpoints inside and at the end of segments are all
 * exercised. A clean log must give exactly the sequential answer; a damaged one must too (the
 * parallel pass hands over to the sequential one, which classifies the damage).
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const PARALLEL = { workers: 2, segmentLevel: 6 };
const SEQUENTIAL = { workers: 0 };

async function makeLog(records: number, event: (i: number) => AuditEvent = (i) => intent({ callId: `v-${i}` })): Promise<{ dir: string; file: string }> {
  const t = tempDir("verify-parallel");
  cleanups.push(t.cleanup);
  const log = await openAuditLog({
    config: auditConfig({ maxBatch: 37, checkpoint: { everyRecords: 50 } }),
    dir: t.dir,
    logger: testLogger,
  });
  await Promise.all(Array.from({ length: records }, (_, i) => log.append(event(i))));
  await log.checkpoint();
  await log.close();
  return { dir: t.dir, file: join(t.dir, "audit.db") };
}

/** Every kind of record the gateway writes: intents, outcomes, refusals, approvals, admin changes. */
function varied(i: number): AuditEvent {
  const base = intent({ callId: `v-${i}` });
  switch (i % 6) {
    case 0:
      return base;
    case 1:
      return { type: "call.outcome", time: base.time, callId: base.callId!, connector: "orders", tool: "orders__get_order", outcome: { status: i % 4 === 1 ? "ok" : "error", latencyMs: i, errorCode: "UPSTREAM_TIMEOUT" } };
    case 2:
      return { ...base, type: "call.refused", decision: { allowed: false, code: "SCOPE_DENIED", reason: `no "scope" for \\ ${i}\n` } };
    case 3:
      return { type: "approval.requested", time: base.time, callId: base.callId!, detail: { approvalId: `a-${i}`, amount: 12.5, list: [1, [2, { x: null }], true] } };
    case 4:
      return { type: "admin.change", time: base.time, detail: { note: "é ü 😀 \u2028", empty: {} } };
    default:
      return { ...base, identity: { subject: `sub "${i}"`, scopes: [] }, tool: "orders__get\u0001order", arguments: { q: "x".repeat(i % 50) } };
  }
}

/** Rewrites a record's bytes and recomputes its stored hash, as an attacker covering tracks would. */
function rewrite(db: Database.Database, seq: number, edit: (text: string) => string): void {
  const row = db.prepare<[number], { body: Buffer }>("SELECT body FROM records WHERE seq = ?").get(seq)!;
  const body = Buffer.from(edit(row.body.toString("utf8")), "utf8");
  db.prepare("UPDATE records SET body = ?, hash = ? WHERE seq = ?").run(body, leafHash(body), seq);
}

/** The fast path alone (no sequential fallback): its root, or undefined when it found anything wrong. */
async function fastPath(file: string, threads = 2): Promise<Buffer | undefined> {
  const store = new SqliteAuditStore(file, { readonly: true });
  try {
    return await verifyParallel(store, store.size(), [], threads, { segmentLevel: PARALLEL.segmentLevel });
  } finally {
    store.close();
  }
}

async function verifyBoth(dir: string): Promise<{ parallel: VerifyReport; sequential: VerifyReport; progress: number[] }> {
  const reader = openAuditReader({ config: auditConfig(), dir });
  try {
    const progress: number[] = [];
    const parallel = await reader.verify({ parallel: PARALLEL, onProgress: (n) => progress.push(n) });
    const sequential = await reader.verify({ parallel: SEQUENTIAL });
    return { parallel, sequential, progress };
  } finally {
    await reader.close();
  }
}

function comparable(r: VerifyReport): Omit<VerifyReport, "elapsedMs"> {
  const { elapsedMs: _ignored, ...rest } = r;
  return rest;
}

function attack(file: string, edit: (db: Database.Database) => void): void {
  const db = new Database(file);
  try {
    for (const { name } of db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type='trigger'").all()) {
      db.exec(`DROP TRIGGER ${name}`);
    }
    db.transaction(() => edit(db))();
  } finally {
    db.close();
  }
}

describe("audit verify on worker threads", () => {
  it.each([1_000, 1_024, 129])("a clean log of %i records: the same report as the sequential pass", async (records) => {
    const { dir } = await makeLog(records);
    const { parallel, sequential, progress } = await verifyBoth(dir);
    expect(sequential.ok).toBe(true);
    expect(comparable(parallel)).toEqual(comparable(sequential));
    expect(parallel.root).toBeDefined();
    // Progress came from the segments, in order, ending at the size.
    expect(progress.length).toBe(Math.ceil(records / 64));
    expect(progress.at(-1)).toBe(records);
  }, 60_000);

  it("one byte changed in a record: the same failure, kind and seq as the sequential pass", async () => {
    const { dir, file } = await makeLog(700);
    attack(file, (db) => {
      const row = db.prepare<[number], { body: Buffer }>("SELECT body FROM records WHERE seq = ?").get(333)!;
      db.prepare("UPDATE records SET body = ? WHERE seq = ?").run(Buffer.from(row.body.toString().replace("v-", "w-")), 333);
    });
    const { parallel, sequential } = await verifyBoth(dir);
    expect(sequential.failure).toMatchObject({ kind: "modified", seq: 333 });
    expect(comparable(parallel)).toEqual(comparable(sequential));
  }, 60_000);

  it("a record deleted at a segment border and a stored upper Merkle node changed: found as sequentially", async () => {
    const { dir, file } = await makeLog(700);
    attack(file, (db) => db.prepare("DELETE FROM records WHERE seq = ?").run(128));
    const first = await verifyBoth(dir);
    expect(first.sequential.failure).toMatchObject({ kind: "deleted", seq: 128 });
    expect(comparable(first.parallel)).toEqual(comparable(first.sequential));

    const other = await makeLog(700);
    // Level 8 covers records 256..511: above the segment level, so only the stitching sees it.
    attack(other.file, (db) => db.prepare("UPDATE nodes SET hash = ? WHERE leaf = 511 AND level = 8").run(Buffer.alloc(32, 7)));
    const second = await verifyBoth(other.dir);
    expect(second.sequential.ok).toBe(false);
    expect(second.sequential.failure).toMatchObject({ kind: "modified", seq: 256 });
    expect(comparable(second.parallel)).toEqual(comparable(second.sequential));
  }, 60_000);
});

describe("audit verify: the fast path", () => {
  it("checks every kind of record the gateway writes without falling back to the exact check, on a worker thread too", async () => {
    const { dir, file } = await makeLog(600, varied);
    const store = new SqliteAuditStore(file, { readonly: true });
    try {
      const result = verifySegment(store, { from: 0, to: 600, topLevel: 10, checkpointSizes: [] });
      expect(result).toMatchObject({ ok: true, exactChecks: 0 });
    } finally {
      store.close();
    }
    // Segments of 64 on the calling thread and a worker: the root the sequential pass computes.
    const root = await fastPath(file);
    const { parallel, sequential } = await verifyBoth(dir);
    expect(sequential.ok).toBe(true);
    expect(root?.toString("base64")).toBe(sequential.root);
    expect(comparable(parallel)).toEqual(comparable(sequential));
  }, 60_000);

  it("a worker thread takes segments from the shared counter and answers as the calling thread would", async () => {
    const { file } = await makeLog(300, varied);
    const tasks: SegmentTask[] = [0, 64, 128, 192, 256].map((from) => ({ from, to: Math.min(300, from + 64), topLevel: 6, checkpointSizes: [] }));
    const shared = new Int32Array(new SharedArrayBuffer(8));
    shared[0] = 1; // segment 0 is the calling thread's
    const worker = startWorker({ file, tasks, shared });
    const results: SegmentResult[] = [];
    worker.on("message", (r: SegmentResult) => results.push(r));
    await new Promise((resolve, reject) => worker.on("exit", resolve).on("error", reject));
    const store = new SqliteAuditStore(file, { readonly: true });
    try {
      expect(results.map((r) => r.from)).toEqual([64, 128, 192, 256]);
      for (const r of results) expect(r).toEqual(verifySegment(store, tasks.find((t) => t.from === r.from)!));
      expect(results.every((r) => r.ok)).toBe(true);
    } finally {
      store.close();
    }
  }, 60_000);

  it("unusual but valid records (escaped member names, deep nesting) take the exact check and still verify", async () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 63; i++) deep = { d: deep };
    const { dir, file } = await makeLog(200, (i) =>
      i === 70 ? ({ ...intent(), "na\"me": 1 } as AuditEvent) : i === 130 ? intent({ arguments: { deep } }) : intent({ callId: `v-${i}` }),
    );
    const store = new SqliteAuditStore(file, { readonly: true });
    try {
      expect(verifySegment(store, { from: 0, to: 200, topLevel: 8, checkpointSizes: [] })).toMatchObject({ ok: true, exactChecks: 2 });
    } finally {
      store.close();
    }
    expect(await fastPath(file)).toBeDefined();
    const { parallel, sequential } = await verifyBoth(dir);
    expect(sequential.ok).toBe(true);
    expect(comparable(parallel)).toEqual(comparable(sequential));
  }, 60_000);

  // Each edit keeps the record's own hash right (recomputed), so only the byte-level checks can see it.
  it.each<[string, (db: Database.Database) => void, Partial<VerifyReport["failures"][number]>]>([
    ["the suffix's version edited", (db) => rewrite(db, 333, (t) => t.replace(/,"v":1}$/, ',"v":2}')), { kind: "modified", seq: 333 }],
    ["the suffix's seq edited", (db) => rewrite(db, 333, (t) => t.replace(/,"seq":333,/, ',"seq":334,')), { kind: "modified", seq: 333 }],
    ["the prev hash edited", (db) => rewrite(db, 333, (t) => t.replace(/"prev":"(.)/, (_, c: string) => `"prev":"${c === "0" ? "1" : "0"}`)), { kind: "modified", seq: 332 }],
    ["whitespace added (valid JSON, not the canonical bytes)", (db) => rewrite(db, 333, (t) => `${t} `), { kind: "modified", seq: 333 }],
    ["the event made invalid JSON", (db) => rewrite(db, 333, (t) => t.replace('"callId":', '"callId"::')), { kind: "modified", seq: 333 }],
    ["a query column edited", (db) => db.prepare("UPDATE records SET tool = 'orders__other' WHERE seq = 333").run(), { kind: "modified", seq: 333 }],
    ["a query column emptied", (db) => db.prepare("UPDATE records SET subject = NULL WHERE seq = 330").run(), { kind: "modified", seq: 330 }],
    ["a query column made a blob", (db) => db.prepare("UPDATE records SET call_id = x'00' WHERE seq = 333").run(), { kind: "modified", seq: 333 }],
    ["the outcome column of a refusal edited", (db) => db.prepare("UPDATE records SET outcome = NULL WHERE seq = 332").run(), { kind: "modified", seq: 332 }],
    ["the stored hash made text", (db) => db.prepare("UPDATE records SET hash = CAST(hash AS TEXT) WHERE seq = 333").run(), { kind: "modified", seq: 333 }],
  ])("%s: found with the sequential pass's kind and seq", async (_name, edit, failure) => {
    const { dir, file } = await makeLog(700, varied);
    attack(file, edit);
    expect(await fastPath(file)).toBeUndefined();
    const { parallel, sequential } = await verifyBoth(dir);
    expect(sequential.failure).toMatchObject(failure);
    expect(comparable(parallel)).toEqual(comparable(sequential));
  }, 60_000);
});
