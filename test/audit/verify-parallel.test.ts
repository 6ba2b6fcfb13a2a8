import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openAuditLog, openAuditReader } from "../../src/audit/open.js";
import type { VerifyReport } from "../../src/audit/verify.js";
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

async function makeLog(records: number): Promise<{ dir: string; file: string }> {
  const t = tempDir("verify-parallel");
  cleanups.push(t.cleanup);
  const log = await openAuditLog({
    config: auditConfig({ maxBatch: 37, checkpoint: { everyRecords: 50 } }),
    dir: t.dir,
    logger: testLogger,
  });
  await Promise.all(Array.from({ length: records }, (_, i) => log.append(intent({ callId: `v-${i}` }))));
  await log.checkpoint();
  await log.close();
  return { dir: t.dir, file: join(t.dir, "audit.db") };
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
