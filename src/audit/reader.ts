import { GatewayError } from "../core/errors.js";
import { peekCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import { readExternalDirectory } from "./external.js";
import { toBase64 } from "./hash.js";
import { consistencyProof, inclusionProof, rangeHash } from "./merkle-tree.js";
import type { NoteVerifier } from "./note.js";
import { CONSISTENCY_FORMAT, makeInclusionBundle, type ConsistencyBundle, type InclusionBundle } from "./proof-bundle.js";
import { parseRecord, type RecordEnvelope } from "./record.js";
import type { CheckpointRow, FullRecordRow, RecordFilter, SqliteAuditStore } from "./store.js";
import type { ParallelOptions } from "./verify-parallel.js";
import { verifyStore, type ExtraCheckpoint, type VerifyReport } from "./verify.js";

export const MAX_PAGE = 1_000;

export interface AuditQuery extends RecordFilter {
  /** Opaque cursor from a previous page's nextCursor. */
  readonly cursor?: string;
  /** Page size, 1..1000 (default 100). */
  readonly limit?: number;
  readonly order?: "asc" | "desc";
}

export interface AuditRecordView {
  readonly seq: number;
  /** Leaf hash of the record (hex): the `prev` of the next record. */
  readonly hash: string;
  readonly record: RecordEnvelope;
}

export interface AuditPage {
  readonly records: readonly AuditRecordView[];
  readonly nextCursor?: string;
}

export interface VerifyCallOptions {
  readonly trustedCheckpoints?: readonly ExtraCheckpoint[];
  readonly extraKeys?: readonly NoteVerifier[];
  readonly onProgress?: (verified: number, total: number) => void;
  /** Worker threads for large logs; defaults to one per core for logs of two segments or more. */
  readonly parallel?: ParallelOptions;
}

function invalid(message: string): GatewayError {
  return new GatewayError("INVALID_REQUEST", message);
}

function isoOrThrow(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalid(`${name} must be an ISO-8601 time, e.g. 2025-01-31T00:00:00Z`);
  return new Date(ms).toISOString();
}

export function viewOf(row: FullRecordRow): AuditRecordView {
  return { seq: row.seq, hash: row.hash.toString("hex"), record: parseRecord(row.body.toString("utf8")) };
}

export function checkpointOf(row: CheckpointRow): SignedCheckpoint {
  return { ...peekCheckpoint(row.note), note: row.note };
}

/** Read access to an audit store: queries, proofs, verification. Safe beside a live writer (WAL). */
export class AuditReader {
  constructor(
    readonly store: SqliteAuditStore,
    readonly origin: string,
    protected readonly trusted: readonly NoteVerifier[],
    protected readonly externalDirectory: string | undefined,
  ) {}

  get file(): string {
    return this.store.file;
  }

  /** Verifier keys this log's checkpoints are checked against (publish these to auditors). */
  trustedKeys(): readonly string[] {
    return this.trusted.map((k) => k.text);
  }

  /**
   * Called before every read: a reader sharing its process with a writer first commits what that
   * writer has queued, so a read sees every record appended before it (read-your-writes).
   */
  protected settle(): void {}

  size(): number {
    this.settle();
    return this.store.size();
  }

  query(q: AuditQuery): AuditPage {
    this.settle();
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw invalid(`limit must be 1..${MAX_PAGE}`);
    let cursor: number | undefined;
    if (q.cursor !== undefined) {
      if (!/^\d{1,15}$/.test(q.cursor)) throw invalid("cursor is not one this log issued");
      cursor = Number(q.cursor);
    }
    if (q.outcome !== undefined && !["ok", "error", "denied"].includes(q.outcome)) {
      throw invalid("outcome must be ok, error or denied");
    }
    const filter: RecordFilter = {
      ...q,
      from: isoOrThrow(q.from, "from"),
      to: isoOrThrow(q.to, "to"),
    };
    const rows = this.store.query(filter, cursor, limit, q.order === "desc");
    const records = rows.map(viewOf);
    const last = records.at(-1);
    return records.length === limit && last ? { records, nextCursor: String(last.seq) } : { records };
  }

  record(seq: number): AuditRecordView | undefined {
    this.settle();
    const row = this.store.record(seq);
    return row && viewOf(row);
  }

  /** Exact stored bytes of records from <= seq < to, in order, in chunks (for export). */
  *rawRecords(from = 0, to = Number.MAX_SAFE_INTEGER): Generator<FullRecordRow> {
    this.settle();
    let next = from;
    for (;;) {
      const rows = this.store.fullRecordChunk(next, to, 5_000);
      if (rows.length === 0) return;
      yield* rows;
      next = rows[rows.length - 1]!.seq + 1;
    }
  }

  latestCheckpoint(): SignedCheckpoint | undefined {
    this.settle();
    const row = this.store.latestCheckpoint();
    return row && checkpointOf(row);
  }

  checkpoints(): SignedCheckpoint[] {
    this.settle();
    return this.store.checkpoints().map(checkpointOf);
  }

  /** Inclusion proof of record `seq` against the latest checkpoint that covers it. */
  prove(seq: number): InclusionBundle {
    if (!Number.isSafeInteger(seq) || seq < 0) throw invalid("seq must be a non-negative integer");
    this.settle();
    const row = this.store.record(seq);
    if (!row) throw new GatewayError("TOOL_NOT_FOUND", `audit record ${seq} does not exist`);
    const cpRow = this.store.checkpointCovering(seq + 1);
    if (!cpRow) {
      throw new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit record ${seq} is not covered by a signed checkpoint yet; one is issued within audit.checkpoint.everyMs`,
      );
    }
    const cp = checkpointOf(cpRow);
    return makeInclusionBundle(seq, row.body, inclusionProof(this.store.nodeReader(), seq, cp.size), cp);
  }

  /** Consistency proof between two tree sizes (0 < from <= to <= size). */
  consistency(from: number, to: number): ConsistencyBundle {
    this.settle();
    const size = this.store.size();
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || from > to || to > size) {
      throw invalid(`need 1 <= from <= to <= ${size}`);
    }
    const reader = this.store.nodeReader();
    const exact = this.store.checkpoints().filter((c) => c.size === to).at(-1);
    return {
      format: CONSISTENCY_FORMAT,
      from,
      to,
      fromRoot: toBase64(rangeHash(reader, 0, from)),
      toRoot: toBase64(rangeHash(reader, 0, to)),
      proof: consistencyProof(reader, from, to).map(toBase64),
      ...(exact ? { checkpoint: exact.note } : {}),
    };
  }

  /** Recomputes everything; includes the external checkpoint directory when one is configured. */
  async verify(opts: VerifyCallOptions = {}): Promise<VerifyReport> {
    this.settle();
    const extra = [
      ...(this.externalDirectory === undefined ? [] : await readExternalDirectory(this.externalDirectory)),
      ...(opts.trustedCheckpoints ?? []),
    ];
    return verifyStore(this.store, {
      origin: this.origin,
      trusted: [...this.trusted, ...(opts.extraKeys ?? [])],
      extraCheckpoints: extra,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.parallel ? { parallel: opts.parallel } : {}),
    });
  }

  close(): Promise<void> {
    this.store.close();
    return Promise.resolve();
  }
}
