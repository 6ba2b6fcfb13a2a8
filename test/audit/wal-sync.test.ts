import { fstatSync, fsync, fsyncSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AuditLog } from "../../src/audit/log.js";
import { openAuditLog } from "../../src/audit/open.js";
import { UNHURRIED_SYNC_MS, WalSync, type SyncCalls } from "../../src/audit/wal-sync.js";
import { rejection } from "../helpers/errors.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

/**
 * The audit log fsyncs its write-ahead log itself (WalSync) instead of SQLite's synchronous=FULL.
 * The disk here is real; `HeldDisk` is a test double only in when it lets an fsync finish: it
 * runs the real fsync, then keeps the completion until the test releases it, which no real disk
 * lets a test decide. `failing` stands in for a disk error, which cannot be produced here.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

class HeldDisk implements SyncCalls {
  /** Every fsync asked for, in order: "sync" on the thread, "async" in the pool. */
  readonly calls: ("sync" | "async")[] = [];
  readonly fds: number[] = [];
  private held: (() => void)[] = [];
  failWith: Error | undefined;

  fsyncSync = (fd: number): void => {
    this.calls.push("sync");
    this.fds.push(fd);
    if (this.failWith) throw this.failWith;
    fsyncSync(fd);
  };

  fsync = (fd: number, done: (err: Error | null) => void): void => {
    this.calls.push("async");
    this.fds.push(fd);
    const failure = this.failWith;
    fsync(fd, (err) => this.held.push(() => done(failure ?? err)));
  };

  get pending(): number {
    return this.held.length;
  }

  /** Completes the oldest fsync once the real one has returned. */
  async release(): Promise<void> {
    await vi.waitFor(() => expect(this.held.length).toBeGreaterThan(0));
    this.held.shift()!();
  }
}

async function openWith(disk: SyncCalls): Promise<{ log: AuditLog; file: string }> {
  const t = tempDir("walsync");
  cleanups.push(t.cleanup);
  // Checkpoints far apart: each signed checkpoint is a commit of its own, fsynced on the thread.
  const config = auditConfig({ checkpoint: { everyRecords: 100_000, everyMs: 3_600_000 } });
  const log = await openAuditLog({ config, dir: t.dir, logger: testLogger, syncCalls: disk });
  cleanups.push(() => log.close());
  return { log, file: join(t.dir, "audit.db") };
}

/** Lets the event loop run a few turns. */
const turns = async (n = 3): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function settledState(p: Promise<unknown>): () => "pending" | "fulfilled" | "rejected" {
  let state: "pending" | "fulfilled" | "rejected" = "pending";
  p.then(
    () => (state = "fulfilled"),
    () => (state = "rejected"),
  );
  return () => state;
}

describe("audit log: the write-ahead log is fsynced by the log, off the event loop", () => {
  it("SQLite commits with synchronous=NORMAL; the descriptor synced is the -wal file SQLite writes, across checkpoints", async () => {
    const disk = new HeldDisk();
    const { log, file } = await openWith(disk);
    expect(log.store.db.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    await log.append(intent(), { now: true });
    const fd = disk.fds.at(-1)!;
    expect(fstatSync(fd).ino).toBe(statSync(`${file}-wal`).ino);

    // Another process checkpoints and truncates the log, reads and goes away: SQLite keeps the file.
    const other = new Database(file);
    other.pragma("wal_checkpoint(TRUNCATE)");
    expect(other.prepare("SELECT count(*) AS n FROM records").get()).toEqual({ n: 1 });
    other.close();
    for (let i = 0; i < 3; i++) await log.append(intent(), { now: true });
    expect(disk.fds.every((d) => d === fd)).toBe(true);
    expect(fstatSync(fd).ino).toBe(statSync(`${file}-wal`).ino);
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(0); // the new records went to that file
  });

  it("a record someone waits for is fsynced on the thread before its append resolves", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.calls.length = 0;
    await log.append(intent({ callId: "grouped" })); // (a pool fsync would be held: this would hang)
    expect(disk.calls).toEqual(["sync"]);
    await log.append(intent({ callId: "lone" }), { now: true });
    expect(disk.calls).toEqual(["sync", "sync"]);
    expect(disk.pending).toBe(0);
  });

  it("an unhurried record waits for the next record's fsync, or UNHURRIED_SYNC_MS when none comes", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.calls.length = 0;
    const outcome = settledState(log.appendLater(() => intent({ callId: "outcome-1" }), { unhurried: true }));
    await turns();
    expect(disk.calls).toEqual([]); // committed, fsync left for the next intent
    expect(outcome()).toBe("pending");
    await log.append(intent({ callId: "next-intent" }), { now: true });
    expect(disk.calls).toEqual(["sync"]);
    await turns(1);
    expect(outcome()).toBe("fulfilled");

    // Nothing follows: its own fsync starts in the thread pool once the window has passed, and
    // the append resolves only when that fsync has returned.
    const started = performance.now();
    const alone = settledState(log.appendLater(() => intent({ callId: "outcome-2" }), { unhurried: true }));
    await vi.waitFor(() => expect(disk.calls).toEqual(["sync", "async"]));
    expect(performance.now() - started).toBeGreaterThanOrEqual(UNHURRIED_SYNC_MS - 0.5);
    await turns();
    expect(alone()).toBe("pending");
    await disk.release();
    await vi.waitFor(() => expect(alone()).toBe("fulfilled"));
  });

  it("unhurried commits made while a pool fsync runs wait for the next one, which covers them all", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.calls.length = 0;
    const unhurried = (callId: string) => settledState(log.appendLater(() => intent({ callId }), { unhurried: true }));
    const a = unhurried("a");
    await vi.waitFor(() => expect(disk.calls).toEqual(["async"]));
    const b = unhurried("b");
    await turns();
    const c = unhurried("c");
    await turns();
    expect(disk.calls).toEqual(["async"]); // b and c committed; one fsync at a time
    await disk.release();
    await turns();
    expect([a(), b(), c()]).toEqual(["fulfilled", "pending", "pending"]);
    expect(disk.calls).toEqual(["async", "async"]);
    await disk.release();
    await turns();
    expect([b(), c()]).toEqual(["fulfilled", "fulfilled"]);
    expect(disk.calls).toEqual(["async", "async"]);
  });

  it("records several callers wait for, committed together, are fsynced in the pool and answered only after it", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.calls.length = 0;
    // Appended on one turn (calls running together): one commit, two callers waiting on it.
    const a = settledState(log.append(intent({ callId: "together-a" })));
    const b = settledState(log.append(intent({ callId: "together-b" })));
    await vi.waitFor(() => expect(disk.calls).toEqual(["async"]));
    await turns();
    expect([a(), b()]).toEqual(["pending", "pending"]); // committed, not yet durable
    // The event loop is free meanwhile: the next pair commits, and waits for the next fsync.
    const c = settledState(log.append(intent({ callId: "next-c" })));
    const d = settledState(log.append(intent({ callId: "next-d" })));
    await turns();
    expect(log.store.db.prepare("SELECT count(*) AS n FROM records").get()).toEqual({ n: 4 });
    expect(disk.calls).toEqual(["async"]); // one fsync at a time
    await disk.release();
    await turns();
    expect([a(), b(), c(), d()]).toEqual(["fulfilled", "fulfilled", "pending", "pending"]);
    expect(disk.calls).toEqual(["async", "async"]);
    await disk.release();
    await turns();
    expect([c(), d()]).toEqual(["fulfilled", "fulfilled"]);
  });

  it("a failed pool fsync refuses every record of its group, and every record after", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.failWith = Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
    const a = log.append(intent({ callId: "group-a" }));
    const b = log.append(intent({ callId: "group-b" }));
    await disk.release();
    for (const p of [a, b]) {
      const err = await rejection(p);
      expect(err.code).toBe("AUDIT_UNAVAILABLE");
      expect(err.message).toContain("fsync of the write-ahead log failed (EIO)");
    }
    disk.failWith = undefined;
    const after = await rejection(log.append(intent({ callId: "after" }), { now: true }));
    expect(after.code).toBe("AUDIT_UNAVAILABLE");
    expect(log.health().restartNeeded).toBe(true);
  });

  it("an fsync on the thread answers the unhurried records still waiting for the pool's", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.calls.length = 0;
    const waiting = settledState(log.appendLater(() => intent({ callId: "outcome" }), { unhurried: true }));
    await vi.waitFor(() => expect(disk.calls).toEqual(["async"]));
    await log.append(intent({ callId: "lone" }), { now: true });
    expect(disk.calls).toEqual(["async", "sync"]);
    await turns(1);
    expect(waiting()).toBe("fulfilled");
    await disk.release(); // the pool's fsync returning late changes nothing
    await turns();
    expect(disk.calls).toEqual(["async", "sync"]);
  });

  it("closing answers every record still waiting for its fsync", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    const outcome = log.appendLater(() => intent({ callId: "last-outcome" }), { unhurried: true });
    await turns();
    await log.close();
    await expect(outcome).resolves.toBeUndefined();
    expect(disk.calls.at(-1)).toBe("sync");
  });

  it("a failed fsync refuses its records and every record after it, until the gateway restarts", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    await log.append(intent({ callId: "before" }));
    const before = log.store.rowCount();
    disk.failWith = Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });

    const hit = log.appendLater(() => intent({ callId: "hit" }), { unhurried: true });
    await disk.release();
    const failed = await rejection(hit);
    expect(failed.code).toBe("AUDIT_UNAVAILABLE");
    expect(failed.message).toContain("fsync of the write-ahead log failed (EIO)");
    expect(failed.message).toContain("until the gateway is restarted");
    expect(log.health()).toMatchObject({ ok: false, restartNeeded: true, detail: expect.stringContaining("EIO") });

    // The disk recovers; the log does not trust it: nothing more is written, whoever waits.
    disk.failWith = undefined;
    const rows = log.store.rowCount();
    expect(rows).toBe(before + 1);
    for (const options of [{ now: true }, {}, { unhurried: true }]) {
      const later = await rejection(log.append(intent({ callId: "after" }), options));
      expect(later.code).toBe("AUDIT_UNAVAILABLE");
      expect(later.message).toContain("fsync of the write-ahead log failed (EIO)");
    }
    expect(log.store.rowCount()).toBe(rows);
    // Nor is a checkpoint signed over what may not be on disk.
    const checkpoints = log.store.checkpoints().length;
    await expect(log.checkpoint()).rejects.toMatchObject({ code: "AUDIT_UNAVAILABLE" });
    expect(log.store.checkpoints()).toHaveLength(checkpoints);
  });

  it("finds the write-ahead log beside the file a symbolic link names, and gives up without one", async () => {
    const t = tempDir("walsync-link");
    cleanups.push(t.cleanup);
    const real = join(t.dir, "real.db");
    const db = new Database(real);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (x)");
    symlinkSync(real, join(t.dir, "link.db"));
    const disk = new HeldDisk();
    const wal = WalSync.open(join(t.dir, "link.db"), disk)!;
    expect(wal).toBeDefined();
    wal.committedOne();
    wal.syncNow();
    expect(fstatSync(disk.fds[0]!).ino).toBe(statSync(`${real}-wal`).ino);
    wal.close();
    db.close();
    // No write-ahead log (not in WAL mode, or not there): the store keeps synchronous=FULL.
    expect(WalSync.open(join(t.dir, "missing.db"))).toBeUndefined();
  });

  it("a failed fsync on the thread refuses the lone call's intent", async () => {
    const disk = new HeldDisk();
    const { log } = await openWith(disk);
    disk.failWith = Object.assign(new Error("ENOSPC: no space left on device, fsync"), { code: "ENOSPC" });
    const err = await rejection(log.append(intent(), { now: true }));
    expect(err.code).toBe("AUDIT_UNAVAILABLE");
    expect(err.message).toContain("fsync of the write-ahead log failed (ENOSPC)");
    expect(log.health().ok).toBe(false);
  });
});
