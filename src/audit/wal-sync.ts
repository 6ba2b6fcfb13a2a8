import { closeSync, fsync, fsyncSync, openSync, realpathSync } from "node:fs";

/** How WalSync reaches the disk; tests substitute a failing one (a disk error cannot be produced here). */
export interface SyncCalls {
  fsyncSync(fd: number): void;
  fsync(fd: number, done: (err: Error | null) => void): void;
}

const nodeSync: SyncCalls = { fsyncSync, fsync };

/**
 * How long a commit nobody waits on may wait for another commit's fsync to cover it. Sequential
 * calls then pay one fsync each (the next intent's covers the last outcome) instead of two, which
 * the disk serialises; a busy client answers and asks again well within it.
 */
export const UNHURRIED_SYNC_MS = 2;

/**
 * Makes the audit store's commits durable itself instead of leaving it to SQLite, so that a commit
 * nobody waits on need not be fsynced on its own.
 *
 * With synchronous=FULL SQLite fsyncs the write-ahead log inside every commit (~0.2 ms each on the
 * benchmark's VM): two per call, and the outcome record's, made after the answer, held up the
 * next request. The store now runs with synchronous=NORMAL, under which a commit only writes the
 * log's pages (SQLite still syncs around its own checkpoints and when the log restarts), and this
 * class fsyncs the log file afterwards. `syncNow` does it on the calling thread, for commits a
 * caller waits on: what synchronous=FULL did, and quicker here than a round trip to a thread
 * (~0.09 ms) for a lone call. `durableSoon` fsyncs in libuv's thread pool, for a commit several
 * callers wait on (calls running together): the event loop goes on serving and committing the
 * next calls, which the next fsync covers. `whenDurable` is for commits nobody waits on (an
 * outcome record whose answer has gone): the next `syncNow` covers them, or, after
 * UNHURRIED_SYNC_MS without one, an fsync in libuv's thread pool, one at a time, each covering
 * every commit made before it started. Such a commit is in the operating system's hands at once,
 * so a crash of the gateway loses nothing; only a crash of the machine within that window could.
 *
 * The file descriptor stays valid: SQLite deletes the log only when its last connection closes,
 * and the writer's connection is open as long as this object is. fsync on any descriptor of a
 * file flushes the file.
 *
 * A failed fsync is final (`failed`): after one, Linux may have dropped the dirty pages it could
 * not write and a later fsync would succeed without them, so nothing afterwards could be called
 * durable. The log then refuses every record until the gateway is restarted.
 */
export class WalSync {
  private committed = 0;
  private durable = 0;
  private syncing = false;
  private waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Set while waiters wait for a `syncNow` to cover them. */
  private timer: NodeJS.Timeout | undefined;
  private error: Error | undefined;
  private closed = false;

  private constructor(
    private fd: number,
    private readonly calls: SyncCalls,
  ) {}

  /**
   * Opens the store's write-ahead log for syncing; undefined when it cannot be opened (the store
   * then keeps synchronous=FULL). `databaseFile` as SQLite was given it; SQLite puts the log
   * beside the file a symbolic link points to.
   */
  static open(databaseFile: string, calls: SyncCalls = nodeSync): WalSync | undefined {
    let fd: number;
    try {
      // Writable: Windows flushes only descriptors opened for writing. Nothing is written through it.
      fd = openSync(`${realpathSync(databaseFile)}-wal`, "r+");
    } catch {
      return undefined;
    }
    return new WalSync(fd, calls);
  }

  /** The fsync error that stopped this log, if one did. */
  get failed(): Error | undefined {
    return this.error;
  }

  /** Counts a commit just made; its number is what `whenDurable` takes. */
  committedOne(): number {
    return ++this.committed;
  }

  /** fsyncs on this thread: every commit so far is durable when it returns. Throws `failed`. */
  syncNow(): void {
    if (this.error) throw this.error;
    const target = this.committed;
    try {
      this.calls.fsyncSync(this.fd);
    } catch (err) {
      this.fail(err);
      throw this.error!;
    }
    this.reached(target);
  }

  /**
   * Resolves once commit `n` is durable, by the next `syncNow` or else by an fsync in the thread
   * pool UNHURRIED_SYNC_MS from now; rejects with the fsync's error if that fails.
   */
  whenDurable(n: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (n <= this.durable) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: n, resolve, reject });
      if (this.timer === undefined && !this.syncing) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick();
        }, UNHURRIED_SYNC_MS);
        // close() syncs what is left; the timer must not keep a finished process alive.
        this.timer.unref();
      }
    });
  }

  /**
   * Resolves once commit `n` is durable, by an fsync in the thread pool started now, or right
   * after the one running (which may predate the commit) returns; or by a `syncNow` before either.
   * Rejects with the fsync's error if that fails.
   */
  durableSoon(n: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (n <= this.durable) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: n, resolve, reject });
      this.kick();
    });
  }

  /** Closes the descriptor once no fsync is running; a pending fsync's waiters still get their answer. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.syncing) this.release();
  }

  /**
   * One fsync in the pool at a time: commits made while it runs wait for the next, which then
   * covers them all (they have waited long enough).
   */
  private kick(): void {
    if (this.syncing || this.error || this.waiters.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.syncing = true;
    const target = this.committed;
    this.calls.fsync(this.fd, (err) => {
      this.syncing = false;
      if (err) this.fail(err);
      else this.reached(target);
      if (this.closed) this.release();
      else this.kick();
    });
  }

  private reached(target: number): void {
    if (target <= this.durable) return;
    this.durable = target;
    if (this.waiters.every((w) => w.upTo <= target)) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const due = this.waiters.filter((w) => w.upTo <= target);
    if (due.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.upTo > target);
    for (const w of due) w.resolve();
  }

  private fail(err: unknown): void {
    const code = (err as { code?: unknown }).code;
    this.error = Object.assign(new Error(`fsync of the write-ahead log failed (${typeof code === "string" ? code : String(err)})`), {
      cause: err,
    });
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.reject(this.error);
  }

  private release(): void {
    if (this.fd < 0) return;
    // A waiter left now would never be answered: the log closed under it.
    if (this.waiters.length > 0) this.fail(new Error("the audit log closed before the fsync"));
    try {
      closeSync(this.fd);
    } catch {
      // Already gone; nothing to release.
    }
    this.fd = -1;
  }
}
