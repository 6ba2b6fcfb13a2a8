import type { Logger } from "pino";
import type { AuditEvent, AuditSink } from "../core/governance.js";
import { GatewayError } from "../core/errors.js";
import { signCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import type { ExternalCheckpointPublisher, ExternalStatus } from "./external.js";
import { GENESIS_PREV, leafHash } from "./hash.js";
import { CompactRange, type CompletedNode } from "./merkle-tree.js";
import type { NoteSigner, NoteVerifier } from "./note.js";
import { composeRecord, prepareEvent, type PreparedEvent } from "./record.js";
import type { Redactor } from "./redact.js";
import { AuditReader } from "./reader.js";
import { AppendConflictError, type NewRecord, type SqliteAuditStore } from "./store.js";

interface Pending {
  readonly prepared: PreparedEvent;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

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
}

export interface AuditHealth {
  readonly ok: boolean;
  readonly size: number;
  readonly lastCheckpointSize?: number;
  readonly lastCheckpointTime?: string;
  readonly external?: ExternalStatus;
  readonly detail?: string;
}

/** Why SQLite refused, in words an operator can act on (never the raw driver message with paths). */
export function describeStoreError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (err instanceof AppendConflictError) return "another process is writing to the same audit file";
  if (typeof code !== "string") return "unexpected error";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) return `the database is locked (${code})`;
  if (code === "SQLITE_FULL") return "the disk or the configured size limit is full (SQLITE_FULL)";
  if (code.startsWith("SQLITE_READONLY")) return `the database is read-only (${code})`;
  if (code.startsWith("SQLITE_IOERR")) return `the file cannot be written (${code})`;
  if (code.startsWith("SQLITE_CANTOPEN")) return `the file cannot be opened (${code})`;
  return code;
}

/**
 * The audit log a gateway writes to. `append` resolves once the record is committed with
 * synchronous=FULL. Appends made while a transaction is being written are queued and committed
 * together in the next one (group commit): one fsync for many records.
 */
export class AuditLog extends AuditReader implements AuditSink {
  private queue: Pending[] = [];
  private flushScheduled = false;
  private tail: Tail;
  private stale = false;
  private closed = false;
  private lastError: string | undefined;
  private lastCheckpoint: SignedCheckpoint | undefined;
  private timer: NodeJS.Timeout | undefined;

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
    this.tail = this.loadTail();
    this.lastCheckpoint = this.latestCheckpoint();
    const tick = Math.max(50, Math.min(settings.everyMs, settings.heartbeatMs) / 2);
    this.timer = setInterval(() => this.onTimer(), tick);
    this.timer.unref();
  }

  /** Resolves once the event is durably recorded; rejects with AUDIT_UNAVAILABLE when it is not. */
  append(event: AuditEvent): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError("AUDIT_UNAVAILABLE", "audit log is closed"));
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(event, { redactor: this.redactor, maxRecordBytes: this.settings.maxRecordBytes });
    } catch (err) {
      return Promise.reject(
        new GatewayError("AUDIT_UNAVAILABLE", `audit record refused: ${(err as Error).message}`, { cause: err }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ prepared, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  override size(): number {
    return this.tail.size;
  }

  health(): AuditHealth {
    return {
      ok: !this.stale && !this.closed,
      size: this.tail.size,
      ...(this.lastCheckpoint ? { lastCheckpointSize: this.lastCheckpoint.size, lastCheckpointTime: this.lastCheckpoint.time } : {}),
      ...(this.publisher.enabled ? { external: { ...this.publisher.status } } : {}),
      ...(this.stale && this.lastError ? { detail: this.lastError } : {}),
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
    await this.publisher.flush();
    this.store.close();
  }

  private loadTail(): Tail {
    const size = this.store.size();
    const last = this.store.lastRecord();
    const range = CompactRange.load(size, this.store.nodeReader());
    return { size, prev: last ? last.hash.toString("hex") : GENESIS_PREV, range };
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.settings.maxBatch);
      this.writeBatch(batch, true);
      if (this.tail.size - (this.lastCheckpoint?.size ?? 0) >= this.settings.everyRecords) this.issueCheckpoint();
    }
  }

  private writeBatch(batch: readonly Pending[], retryOnConflict: boolean): void {
    try {
      if (this.stale) {
        this.tail = this.loadTail();
        this.stale = false;
      }
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
      this.store.appendBatch(size, records, nodes);
      this.tail = { size: size + batch.length, prev, range };
      this.lastError = undefined;
      for (const p of batch) p.resolve();
    } catch (err) {
      // Whatever failed, the database rolled back; re-read the tail before the next write.
      this.stale = true;
      if (err instanceof AppendConflictError && retryOnConflict) {
        this.writeBatch(batch, false);
        return;
      }
      this.lastError = describeStoreError(err);
      this.logger.error({ err: this.lastError, records: batch.length }, "audit: append failed; calls are refused");
      const failure = new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit log ${this.file}: cannot record durably: ${this.lastError}`,
        { cause: err },
      );
      for (const p of batch) p.reject(failure);
    }
  }

  private onTimer(): void {
    if (this.closed || this.stale) return;
    const last = this.lastCheckpoint;
    const age = last ? Date.now() - Date.parse(last.time) : Infinity;
    const grew = this.tail.size !== (last?.size ?? -1);
    if ((grew && age >= this.settings.everyMs * 0.9) || age >= this.settings.heartbeatMs * 0.99) this.issueCheckpoint();
  }

  private issueCheckpoint(): SignedCheckpoint | undefined {
    try {
      const cp = signCheckpoint(
        { origin: this.origin, size: this.tail.size, root: this.tail.range.root(), time: new Date().toISOString() },
        [this.signer],
      );
      this.store.insertCheckpoint(cp.size, cp.time, cp.root, cp.note);
      this.lastCheckpoint = cp;
      this.publisher.publish(cp);
      return cp;
    } catch (err) {
      this.lastError = describeStoreError(err);
      this.logger.warn({ err: this.lastError }, "audit: cannot store a checkpoint; will retry");
      return undefined;
    }
  }
}
