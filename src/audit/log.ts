import type { Logger } from "pino";
import type { AppendOptions, AuditEvent, AuditSink } from "../core/governance.js";
import { GatewayError } from "../core/errors.js";
import { signCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import type { ExternalCheckpointPublisher, ExternalStatus } from "./external.js";
import { GENESIS_PREV, leafHash } from "./hash.js";
import { CompactRange, type CompletedNode } from "./merkle-tree.js";
import type { NoteSigner, NoteVerifier } from "./note.js";
import { composeRecord, prepareEvent, type PreparedEvent } from "./record.js";
import type { Redactor } from "./redact.js";
import { AuditReader, checkpointOf } from "./reader.js";
import type { NewRecord, SqliteAuditStore } from "./store.js";
import { WalSync, type SyncCalls } from "./wal-sync.js";

/**
 * From how many awaited records in one commit its fsync goes to the thread pool. Under 64 HTTP
 * sessions the event loop spent ~10 % of its time blocked in fsync; in the pool, paired runs on
 * 2026-11-22's host served 8-10 % more calls/s at 8 and 64 sessions with less CPU per call. A
 * lone call keeps its fsync on the thread (the pool's round trip costs it ~0.09 ms).
 */
const POOL_SYNC_MIN_AWAITED = 2;

interface Pending {
  /** Set by `append`; by `appendLater` only when the queue is written (`build` runs then). */
  prepared: PreparedEvent | undefined;
  readonly build: (() => AuditEvent) | undefined;
  readonly unhurried: boolean;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** What writeBatch gets: every entry prepared. */
type Ready = Pending & { readonly prepared: PreparedEvent };

interface Tail {
  size: number;
  prev: string;
  range: CompactRange;
}

export interface AuditLogSettings {
  readonly maxBatch: number;
  readonly maxRecordBytes: number;
  readonly everyRecords: number;
  readonly everyMs: number;
  readonly heartbeatMs: number;
  /** How the write-ahead log is fsynced (tests substitute a failing disk); node's fs by default. */
  readonly syncCalls?: SyncCalls;
}

export interface AuditHealth {
  readonly ok: boolean;
  readonly size: number;
  readonly lastCheckpointSize?: number;
  readonly lastCheckpointTime?: string;
  readonly external?: ExternalStatus;
  readonly detail?: string;
  /** A failed fsync: nothing is recorded (and no call runs) until the gateway restarts. */
  readonly restartNeeded?: boolean;
}

/** Why SQLite refused, in words an operator can act on (never the raw driver message with paths). */
export function describeStoreError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string") return "unexpected error";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return `the database is locked (${code})`;
  if (code === "SQLITE_FULL") return "the disk or the configured size limit is full (SQLITE_FULL)";
  if (code.startsWith("SQLITE_READONLY")) return `the database is read-only (${code})`;
  if (code.startsWith("SQLITE_IOERR")) return `the file cannot be written (${code})`;
  if (code.startsWith("SQLITE_CANTOPEN")) return `the file cannot be opened (${code})`;
  return code;
}

function refused(err: unknown): GatewayError {
  const why = err instanceof Error ? err.message : String(err);
  return new GatewayError("AUDIT_UNAVAILABLE", `audit record refused: ${why}`, { cause: err });
}

/**
 * The audit log a gateway writes to. `append` resolves once the record is committed and on disk.
 * Appends made in one turn of the event loop are committed together in the next (group commit:
 * one fsync for many); a lone caller's (`now`) at once. The log fsyncs the write-ahead log itself
 * (WalSync): right after the commit when anyone waits for a record of it, later for records nobody
 * waits for (`unhurried`), whose fsync the next commit's usually covers.
 *
 * Several processes may write to one file (an HTTP gateway and a stdio one launched by a desktop
 * client, on one deployment directory). Each write takes SQLite's write lock first and then checks
 * that the tail it cached is still the last record; when another process appended meanwhile, it
 * reloads the tail (the last hash and the O(log n) Merkle frontier) inside the same transaction.
 * The chain therefore never forks, whoever writes.
 */
export class AuditLog extends AuditReader implements AuditSink {
  private queue: Pending[] = [];
  private flushScheduled = false;
  private flushNow = false;
  private tail: Tail;
  private stale = false;
  /** The store's data_version when this process last checked its tail under the write lock. */
  private seenVersion: number | undefined;
  private closed = false;
  private lastError: string | undefined;
  private lastCheckpoint: SignedCheckpoint | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Undefined when the log file cannot be opened beside the store: SQLite then fsyncs (FULL). */
  private readonly wal: WalSync | undefined;

  constructor(
    store: SqliteAuditStore,
    origin: string,
    trusted: readonly NoteVerifier[],
    externalDirectory: string | undefined,
    private readonly signer: NoteSigner,
    private readonly redactor: Redactor,
    private readonly publisher: ExternalCheckpointPublisher,
    private readonly settings: AuditLogSettings,
    private readonly logger: Logger,
  ) {
    super(store, origin, trusted, externalDirectory);
    this.wal = WalSync.open(store.file, settings.syncCalls);
    if (this.wal) store.leaveCommitSyncToCaller();
    else logger.warn({ file: store.file }, "audit: cannot open the write-ahead log for syncing; SQLite fsyncs each commit on the event loop");
    this.tail = this.loadTail();
    this.lastCheckpoint = this.latestCheckpoint();
    const tick = Math.max(50, Math.min(settings.everyMs, settings.heartbeatMs) / 2);
    this.timer = setInterval(() => this.onTimer(), tick);
    this.timer.unref();
  }

  /**
   * Resolves once the event is durably recorded; rejects with AUDIT_UNAVAILABLE when it is not.
   * With `now`, the queue is written on this turn's microtask queue instead of the next turn.
   */
  append(event: AuditEvent, options?: AppendOptions): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError("AUDIT_UNAVAILABLE", "audit log is closed"));
    let prepared: PreparedEvent;
    try {
      prepared = this.prepare(event);
    } catch (err) {
      return Promise.reject(refused(err));
    }
    return this.enqueue(prepared, undefined, options);
  }

  /**
   * Queues a record built when the queue is written (see AuditSink). A `build` that throws, or an
   * event the log refuses, rejects this record alone; the rest of its batch is written.
   */
  appendLater(build: () => AuditEvent, options?: AppendOptions): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError("AUDIT_UNAVAILABLE", "audit log is closed"));
    return this.enqueue(undefined, build, options);
  }

  private prepare(event: AuditEvent): PreparedEvent {
    return prepareEvent(event, { redactor: this.redactor, maxRecordBytes: this.settings.maxRecordBytes });
  }

  private enqueue(
    prepared: PreparedEvent | undefined,
    build: (() => AuditEvent) | undefined,
    options: AppendOptions | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ prepared, build, unhurried: options?.unhurried === true, resolve, reject });
      if (options?.now === true) {
        // A flush already scheduled for the next turn then finds the queue empty, or takes what
        // was appended after this one.
        if (!this.flushNow) {
          this.flushNow = true;
          queueMicrotask(() => {
            this.flushNow = false;
            if (!this.closed && this.queue.length > 0) this.flush();
          });
        }
      } else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Records in the log, by any writer; what this process last saw if the store cannot be read. */
  override size(): number {
    this.settle();
    try {
      return this.store.size();
    } catch {
      return this.tail.size;
    }
  }

  /** Commits what is queued now rather than on the next turn of the event loop (see AuditReader). */
  protected override settle(): void {
    if (!this.closed && this.queue.length > 0) this.flush();
  }

  health(): AuditHealth {
    return {
      ok: !this.stale && !this.closed && this.wal?.failed === undefined,
      size: this.tail.size,
      ...(this.lastCheckpoint ? { lastCheckpointSize: this.lastCheckpoint.size, lastCheckpointTime: this.lastCheckpoint.time } : {}),
      ...(this.publisher.enabled ? { external: { ...this.publisher.status } } : {}),
      ...((this.stale || this.wal?.failed) && this.lastError ? { detail: this.lastError } : {}),
      ...(this.wal?.failed ? { restartNeeded: true } : {}),
    };
  }

  /** Signs and stores a checkpoint of the current tree now (also published externally). */
  async checkpoint(): Promise<SignedCheckpoint> {
    this.flush();
    const cp = this.issueCheckpoint();
    if (!cp) throw new GatewayError("AUDIT_UNAVAILABLE", `audit log ${this.file}: cannot store a checkpoint (${this.lastError ?? "unknown"})`);
    await this.publisher.flush();
    return cp;
  }

  /** Waits until queued checkpoint copies reached the external directory / endpoint. */
  flushExternal(): Promise<void> {
    return this.publisher.flush();
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (!this.stale && (this.lastCheckpoint?.size ?? -1) !== this.tail.size) this.issueCheckpoint();
    if (this.wal && this.wal.failed === undefined) {
      try {
        this.wal.syncNow(); // answers every unhurried append still waiting for an fsync
      } catch {
        // failed: those appends were rejected with the cause
      }
    }
    this.wal?.close();
    await this.publisher.flush();
    this.store.close();
  }

  private loadTail(): Tail {
    const last = this.store.lastRecord();
    const size = last === undefined ? 0 : last.seq + 1;
    const range = CompactRange.load(size, this.store.nodeReader());
    return { size, prev: last ? last.hash.toString("hex") : GENESIS_PREV, range };
  }

  /**
   * Inside a write transaction: makes the cached tail the store's real tail. Cheap when no other
   * connection committed since (one pragma), one indexed read when one did (a checkpoint, say);
   * reloads when another process appended or a failed write left the cache in doubt.
   */
  private syncTail(): void {
    // Nobody else committed since this process last looked: the cached tail is the tail.
    const version = this.store.dataVersion();
    if (!this.stale && version === this.seenVersion) return;
    this.seenVersion = version;
    if (!this.stale) {
      const last = this.store.lastRecord();
      const current =
        last === undefined
          ? this.tail.size === 0
          : last.seq === this.tail.size - 1 && last.hash.toString("hex") === this.tail.prev;
      if (current) return;
      this.logger.debug({ cached: this.tail.size, stored: last ? last.seq + 1 : 0 }, "audit: another writer appended; reloading the tail");
    }
    this.tail = this.loadTail();
    this.stale = false;
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.ready(this.queue.splice(0, this.settings.maxBatch));
      if (batch.length > 0) this.writeBatch(batch);
      if (this.tail.size - (this.lastCheckpoint?.size ?? 0) >= this.settings.everyRecords) this.issueCheckpoint();
    }
  }

  /** Builds and prepares deferred entries; one that cannot be is rejected and left out. */
  private ready(batch: Pending[]): Ready[] {
    const out: Ready[] = [];
    for (const p of batch) {
      if (p.prepared === undefined) {
        try {
          p.prepared = this.prepare(p.build!());
        } catch (err) {
          p.reject(refused(err));
          continue;
        }
      }
      out.push(p as Ready);
    }
    return out;
  }

  private writeBatch(batch: readonly Ready[]): void {
    if (this.wal?.failed) {
      for (const p of batch) p.reject(this.syncFailure(this.wal.failed));
      return;
    }
    try {
      this.tail = this.store.writeTransaction(() => {
        this.syncTail();
        const { size, range: committed } = this.tail;
        const range = committed.clone();
        let prev = this.tail.prev;
        const records: NewRecord[] = [];
        const nodes: CompletedNode[] = [];
        for (const [i, p] of batch.entries()) {
          const body = Buffer.from(composeRecord(p.prepared.canonical, prev, size + i), "utf8");
          const hash = leafHash(body);
          records.push({ seq: size + i, hash, body, columns: p.prepared.columns });
          nodes.push(...range.append(hash));
          prev = hash.toString("hex");
        }
        this.store.insertBatch(records, nodes);
        return { size: size + batch.length, prev, range };
      });
      this.lastError = undefined;
    } catch (err) {
      // The transaction rolled back; the tail is re-read under the lock before the next write.
      this.stale = true;
      this.lastError = describeStoreError(err);
      this.logger.error({ err: this.lastError, records: batch.length }, "audit: append failed; calls are refused");
      const failure = new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit log ${this.file}: cannot record durably: ${this.lastError}`,
        { cause: err },
      );
      for (const p of batch) p.reject(failure);
      return;
    }
    this.whenDurable(batch);
  }

  /**
   * Answers a committed batch once it is on disk. A lone record someone waits for (one call at a
   * time) is fsynced on the spot, as synchronous=FULL did: a trip to the thread pool would add to
   * its call's latency. A batch that several callers wait for (calls running together) is fsynced
   * in the thread pool (WalSync.durableSoon), so the event loop goes on serving, and committing,
   * the next calls meanwhile; the next fsync then covers all of those. A batch of unhurried
   * records only is left to the next fsync (WalSync.whenDurable). Nothing resolves before the
   * fsync that covers it has returned.
   */
  private whenDurable(batch: readonly Ready[]): void {
    const wal = this.wal;
    if (wal === undefined) {
      for (const p of batch) p.resolve();
      return;
    }
    const n = wal.committedOne();
    let awaited = 0;
    for (const p of batch) if (!p.unhurried) awaited++;
    if (awaited >= POOL_SYNC_MIN_AWAITED) return this.answerWhen(wal.durableSoon(n), batch);
    if (awaited > 0) {
      try {
        wal.syncNow();
      } catch (err) {
        const failure = this.syncFailure(err);
        for (const p of batch) p.reject(failure);
        return;
      }
      for (const p of batch) p.resolve();
      return;
    }
    this.answerWhen(wal.whenDurable(n), batch);
  }

  /** Answers every record of a committed batch when `durable` settles. */
  private answerWhen(durable: Promise<void>, batch: readonly Ready[]): void {
    durable.then(
      () => {
        for (const p of batch) p.resolve();
      },
      (err: unknown) => {
        const failure = this.syncFailure(err);
        for (const p of batch) p.reject(failure);
      },
    );
  }

  /** The refusal for records after a failed fsync; logs the failure the first time. */
  private syncFailure(err: unknown): GatewayError {
    const why = err instanceof Error ? err.message : String(err);
    if (this.lastError !== why) {
      this.lastError = why;
      this.logger.error({ err: why }, "audit: the log could not be made durable; every call is refused until the gateway restarts");
    }
    return new GatewayError(
      "AUDIT_UNAVAILABLE",
      `audit log ${this.file}: cannot record durably: ${why}; records are refused until the gateway is restarted (check the disk first)`,
      { cause: err },
    );
  }

  private onTimer(): void {
    if (this.closed) return;
    let last = this.lastCheckpoint;
    let size = this.tail.size;
    try {
      // Another process on the same file may have checkpointed or appended: one heartbeat per log, not per process.
      const stored = this.store.latestCheckpoint();
      if (stored && (!last || stored.size > last.size || (stored.size === last.size && stored.time > last.time))) {
        last = this.lastCheckpoint = checkpointOf(stored);
      }
      size = this.store.size();
    } catch {
      // Unreadable right now: decide on what this process knows; issuing will report the cause.
    }
    const age = last ? Date.now() - Date.parse(last.time) : Infinity;
    const grew = size !== (last?.size ?? -1);
    if ((grew && age >= this.settings.everyMs * 0.9) || age >= this.settings.heartbeatMs * 0.99) this.issueCheckpoint();
  }

  /** Signs the tree as it is in the store (all writers' records), under the write lock. */
  private issueCheckpoint(): SignedCheckpoint | undefined {
    // After a failed fsync nothing written could be called durable, signatures included.
    if (this.wal?.failed) return undefined;
    try {
      const cp = this.store.writeTransaction(() => {
        this.syncTail();
        const signed = signCheckpoint(
          { origin: this.origin, size: this.tail.size, root: this.tail.range.root(), time: new Date().toISOString() },
          [this.signer],
        );
        this.store.insertCheckpoint(signed.size, signed.time, signed.root, signed.note);
        return signed;
      });
      // On disk before anyone outside sees it: a published checkpoint the log could lose would
      // look like a rolled-back log to every verifier.
      if (this.wal) {
        this.wal.committedOne();
        this.wal.syncNow();
      }
      this.lastCheckpoint = cp;
      this.publisher.publish(cp);
      return cp;
    } catch (err) {
      this.lastError = this.wal?.failed ? this.wal.failed.message : describeStoreError(err);
      this.logger.warn({ err: this.lastError }, "audit: cannot store a checkpoint; will retry");
      return undefined;
    }
  }
}
