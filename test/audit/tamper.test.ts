import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { signCheckpoint } from "../../src/audit/checkpoint.js";
import { leafHash } from "../../src/audit/hash.js";
import { CompactRange } from "../../src/audit/merkle-tree.js";
import { generateNoteKey, parseSignerKey } from "../../src/audit/note.js";
import { openAuditLog, openAuditReader } from "../../src/audit/open.js";
import { composeRecord, parseRecord } from "../../src/audit/record.js";
import type { VerifyReport } from "../../src/audit/verify.js";
import canonicalize from "canonicalize";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

/**
 * Each case tampers with a real audit.db the way an attacker holding the file would: open it
 * with SQLite, drop the append-only triggers, edit. Verify must name the right kind and seq.
 */

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

const RECORDS = 24;

/** A log of 24 records with checkpoints at 0 (open), 10, 20 and 24 (close); returns the final note. */
async function makeLog(overrides: Record<string, unknown> = {}) {
  const t = tempDir("tamper");
  cleanups.push(t.cleanup);
  const config = auditConfig({ maxBatch: 1, checkpoint: { everyRecords: 10 }, ...overrides });
  const log = await openAuditLog({ config, dir: t.dir, logger: testLogger });
  for (let i = 0; i < RECORDS; i++) await log.append(intent({ callId: `t-${i}` }));
  await log.close();
  return { dir: t.dir, config, file: join(t.dir, "audit.db") };
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

function body(db: Database.Database, seq: number): string {
  return db.prepare<[number], { body: Buffer }>("SELECT body FROM records WHERE seq = ?").get(seq)!.body.toString("utf8");
}

async function verify(
  dir: string,
  config = auditConfig(),
  trustedCheckpoints: { source: string; note: string }[] = [],
): Promise<VerifyReport> {
  const reader = openAuditReader({ config, dir });
  try {
    return await reader.verify({ trustedCheckpoints });
  } finally {
    await reader.close();
  }
}

function latestNote(dir: string): string {
  const reader = openAuditReader({ config: auditConfig(), dir });
  try {
    return reader.latestCheckpoint()!.note;
  } finally {
    void reader.close();
  }
}

describe("audit verify: tamper detection on a real file", () => {
  it("passes on an untouched log", async () => {
    const { dir } = await makeLog();
    const report = await verify(dir);
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(RECORDS);
    expect(report.attestedSize).toBe(RECORDS);
  });

  it("one byte changed in a record → modified at that seq", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      const b = Buffer.from(body(db, 7), "utf8");
      const at = b.indexOf("o-");
      b[at + 2] = b[at + 2]! ^ 0x01;
      db.prepare("UPDATE records SET body = ? WHERE seq = 7").run(b);
    });
    const report = await verify(dir);
    expect(report.ok).toBe(false);
    expect(report.failure).toMatchObject({ kind: "modified", seq: 7 });
  });

  it("one byte changed and the stored hash recomputed → still modified at that seq (the successor's prev)", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      const text = body(db, 7).replace('"orderId":"o-', '"orderId":"x-');
      const b = Buffer.from(text, "utf8");
      db.prepare("UPDATE records SET body = ?, hash = ? WHERE seq = 7").run(b, leafHash(b));
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "modified", seq: 7 });
  });

  it("a record deleted from the middle → deleted at its seq", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => db.prepare("DELETE FROM records WHERE seq = 10").run());
    expect((await verify(dir)).failure).toMatchObject({ kind: "deleted", seq: 10, toSeq: 10 });
  });

  it("a record deleted and the later ones renumbered → deleted at its seq", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      db.prepare("DELETE FROM records WHERE seq = 10").run();
      for (let s = 11; s < RECORDS; s++) db.prepare("UPDATE records SET seq = ? WHERE seq = ?").run(s - 1, s);
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "deleted", seq: 10 });
  });

  it("the tail deleted (with its nodes and checkpoints) → truncated versus an exported checkpoint", async () => {
    const { dir, file } = await makeLog();
    const exported = latestNote(dir);
    attack(file, (db) => {
      db.prepare("DELETE FROM records WHERE seq >= 15").run();
      db.prepare("DELETE FROM nodes WHERE leaf >= 15").run();
      db.prepare("DELETE FROM checkpoints WHERE size > 15").run();
    });
    // Without a copy from outside the store, a clean cut is invisible: that is why copies exist.
    expect((await verify(dir)).ok).toBe(true);
    const report = await verify(dir, auditConfig(), [{ source: "exported.checkpoint", note: exported }]);
    expect(report.failure).toMatchObject({ kind: "truncated", seq: 15, toSeq: RECORDS - 1 });
  });

  it("the tail deleted → truncated versus the external checkpoint directory, and the gateway refuses to start", async () => {
    const ext = { checkpoint: { everyRecords: 10, external: { directory: "witness" } } };
    const { dir, file, config } = await makeLog(ext);
    attack(file, (db) => {
      db.prepare("DELETE FROM records WHERE seq >= 15").run();
      db.prepare("DELETE FROM nodes WHERE leaf >= 15").run();
      db.prepare("DELETE FROM checkpoints WHERE size > 15").run();
    });
    expect((await verify(dir, config)).failure).toMatchObject({ kind: "truncated", seq: 15 });
    await expect(openAuditLog({ config, dir, logger: testLogger })).rejects.toMatchObject({
      code: "AUDIT_UNAVAILABLE",
      message: expect.stringMatching(/has 15 records .* checkpoint for 24: its tail was deleted/) as unknown,
    });
  });

  it("the tail deleted but its Merkle nodes left behind → truncated", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      db.prepare("DELETE FROM records WHERE seq >= 15").run();
      db.prepare("DELETE FROM checkpoints WHERE size > 15").run();
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "truncated", seq: 15 });
  });

  it("two records swapped (bytes and hashes) → reordered at the first", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      const get = db.prepare<[number], { body: Buffer; hash: Buffer }>("SELECT body, hash FROM records WHERE seq = ?");
      const a = get.get(4)!;
      const b = get.get(5)!;
      const put = db.prepare("UPDATE records SET body = ?, hash = ? WHERE seq = ?");
      put.run(b.body, b.hash, 4);
      put.run(a.body, a.hash, 5);
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "reordered", seq: 4 });
  });

  it("two records swapped (bytes only) → reordered at the first", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      const a = Buffer.from(body(db, 4));
      const b = Buffer.from(body(db, 5));
      db.prepare("UPDATE records SET body = ? WHERE seq = 4").run(b);
      db.prepare("UPDATE records SET body = ? WHERE seq = 5").run(a);
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "reordered", seq: 4 });
  });

  it("a forged record inserted (chained to its predecessor, later ones shifted) → inserted at its seq", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => {
      for (let s = RECORDS - 1; s >= 6; s--) db.prepare("UPDATE records SET seq = ? WHERE seq = ?").run(s + 1, s);
      const prev = db.prepare<[], { hash: Buffer }>("SELECT hash FROM records WHERE seq = 5").get()!.hash.toString("hex");
      const event = canonicalize({ type: "admin.change", time: "2025-01-01T00:00:00.000Z", detail: { note: "forged" } })!;
      const forged = Buffer.from(composeRecord(event, prev, 6));
      db.prepare("INSERT INTO records (seq, time, type, hash, body) VALUES (6, ?, 'admin.change', ?, ?)").run(
        "2025-01-01T00:00:00.000Z",
        leafHash(forged),
        forged,
      );
    });
    expect((await verify(dir)).failure).toMatchObject({ kind: "inserted", seq: 6 });
  });

  /** Rewrites record 13's arguments and recomputes every later hash, the chain and all nodes. */
  function rebuildFrom13(db: Database.Database): void {
    const rows = db.prepare<[], { seq: number; body: Buffer }>("SELECT seq, body FROM records ORDER BY seq").all();
    let prev = "0".repeat(64);
    const range = new CompactRange();
    db.prepare("DELETE FROM nodes").run();
    for (const row of rows) {
      let text = row.body.toString("utf8");
      if (row.seq >= 13) {
        const env = parseRecord(text);
        if (row.seq === 13) (env.event.arguments as Record<string, unknown>).orderId = "nothing-to-see";
        text = composeRecord(canonicalize(env.event)!, prev, row.seq);
      }
      const b = Buffer.from(text);
      const h = leafHash(b);
      db.prepare("UPDATE records SET body = ?, hash = ? WHERE seq = ?").run(b, h, row.seq);
      for (const n of range.append(h)) db.prepare("INSERT INTO nodes (leaf, level, hash) VALUES (?, ?, ?)").run(n.leaf, n.level, n.hash);
      prev = h.toString("hex");
    }
  }

  it("the log rebuilt with valid hashes from record 13 on, old checkpoints kept → modified after the last matching checkpoint", async () => {
    const { dir, file } = await makeLog();
    attack(file, rebuildFrom13);
    const report = await verify(dir);
    expect(report.failure).toMatchObject({ kind: "modified", seq: 10, toSeq: 19 });
    expect(report.failure!.message).toMatch(/do not reproduce the root signed/);
  });

  it("the log rebuilt and re-signed with the attacker's own key → bad signature after the last trusted checkpoint", async () => {
    const { dir, file } = await makeLog();
    const reader = openAuditReader({ config: auditConfig(), dir });
    const at10 = reader.checkpoints().find((c) => c.size === 10)!.note;
    const origin = reader.origin;
    await reader.close();
    attack(file, (db) => {
      rebuildFrom13(db);
      // Same key name as the real one, different key: all the attacker can do without it.
      const mine = parseSignerKey(generateNoteKey(origin).signer);
      const range = new CompactRange();
      const hashes = db.prepare<[], { hash: Buffer }>("SELECT hash FROM records ORDER BY seq").all();
      db.prepare("DELETE FROM checkpoints").run();
      hashes.forEach((r, i) => {
        range.append(r.hash);
        if ((i + 1) % 10 === 0 || i + 1 === hashes.length) {
          const cp = signCheckpoint({ origin, size: i + 1, root: range.root(), time: new Date().toISOString() }, [mine]);
          db.prepare("INSERT INTO checkpoints (size, time, root, note) VALUES (?, ?, ?, ?)").run(cp.size, cp.time, cp.root, cp.note);
        }
      });
    });
    const report = await verify(dir, auditConfig(), [{ source: "auditor copy of checkpoint 10", note: at10 }]);
    expect(report.failure).toMatchObject({ kind: "bad-signature", seq: 10 });
    expect(report.failures.every((f) => f.kind === "bad-signature")).toBe(true);
    expect(report.failure!.message).toMatch(/not signed by any trusted key/);
  });

  it("query columns edited to hide a record from queries → modified", async () => {
    const { dir, file } = await makeLog();
    attack(file, (db) => db.prepare("UPDATE records SET subject = 'mallory' WHERE seq = 3").run());
    expect((await verify(dir)).failure).toMatchObject({ kind: "modified", seq: 3 });
  });

  it("the append-only triggers refuse UPDATE and DELETE", async () => {
    const { dir, file } = await makeLog();
    const db = new Database(file);
    try {
      expect(() => db.prepare("UPDATE records SET type = 'x' WHERE seq = 1").run()).toThrow(/append-only/);
      expect(() => db.prepare("DELETE FROM records WHERE seq = 1").run()).toThrow(/append-only/);
      expect(() => db.prepare("DELETE FROM nodes").run()).toThrow(/append-only/);
      expect(() => db.prepare("UPDATE checkpoints SET size = 0").run()).toThrow(/append-only/);
    } finally {
      db.close();
    }
    expect((await verify(dir)).ok).toBe(true);
    attack(file, () => undefined);
    expect((await verify(dir)).warnings.join()).toMatch(/triggers missing/);
  });
});
