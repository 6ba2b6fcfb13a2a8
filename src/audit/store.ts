import Database from "better-sqlite3";
import type { CompletedNode, NodeReader } from "./merkle-tree.js";
import { lastLeafOf } from "./merkle-tree.js";
import type { RecordColumns } from "./record.js";

/**
 * The SQLite store: WAL, synchronous=FULL (a commit is on disk before it returns; the audit log
 * switches to NORMAL and fsyncs each commit itself, see WalSync), and triggers
 * that refuse UPDATE and DELETE on every table. The triggers stop mistakes and casual edits; an
 * attacker with the file can drop them, which is what the hash chain, the Merkle tree and the
 * signed checkpoints are for.
 */

export const STORE_FORMAT = "portcullis-audit/1";
const TABLES = ["meta", "records", "nodes", "checkpoints"] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  type TEXT NOT NULL,
  call_id TEXT,
  subject TEXT,
  connector TEXT,
  tool TEXT,
  outcome TEXT,
  hash BLOB NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_time ON records(time);
CREATE INDEX IF NOT EXISTS records_call ON records(call_id) WHERE call_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_subject ON records(subject, time);
CREATE INDEX IF NOT EXISTS records_tool ON records(tool, time);
CREATE TABLE IF NOT EXISTS nodes (
  leaf INTEGER NOT NULL,
  level INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (leaf, level)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  id INTEGER PRIMARY KEY,
  size INTEGER NOT NULL,
  time TEXT NOT NULL,
  root BLOB NOT NULL,
  note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_size ON checkpoints(size);
`;

function triggersSql(): string {
  return TABLES.flatMap((t) =>
    (["UPDATE", "DELETE"] as const).map(
      (op) =>
        `CREATE TRIGGER IF NOT EXISTS ${t}_no_${op.toLowerCase()} BEFORE ${op} ON ${t} ` +
        `BEGIN SELECT RAISE(ABORT, 'audit log is append-only: ${op} on ${t} refused'); END;`,
    ),
  ).join("\n");
}

export interface RecordRow {
  readonly seq: number;
  readonly hash: Buffer;
  readonly body: Buffer;
}

export interface FullRecordRow extends RecordRow {
  readonly columns: RecordColumns;
}

export interface NewRecord {
  readonly seq: number;
  readonly hash: Buffer;
  readonly body: Buffer;
  readonly columns: RecordColumns;
}

export interface CheckpointRow {
  readonly id: number;
  readonly size: number;
  readonly time: string;
  readonly root: Buffer;
  readonly note: string;
}

export interface RecordFilter {
  /** Inclusive lower bound, ISO-8601. */
  readonly from?: string;
  /** Exclusive upper bound, ISO-8601. */
  readonly to?: string;
  readonly subject?: string;
  readonly tool?: string;
  readonly connector?: string;
  readonly outcome?: string;
  readonly callId?: string;
  readonly type?: string;
}

export interface StoreOptions {
  readonly readonly?: boolean;
  readonly busyTimeoutMs?: number;
  /** Caps the database file; past it, writes fail with SQLITE_FULL (and calls are refused). */
  readonly maxSizeBytes?: number;
}

export class SqliteAuditStore {
  readonly db: Database.Database;
  readonly file: string;
  private readonly stmts: ReturnType<SqliteAuditStore["prepare"]>;
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(file: string, opts: StoreOptions = {}) {
    this.file = file;
    this.db = new Database(file, {
      readonly: opts.readonly ?? false,
      fileMustExist: opts.readonly ?? false,
      timeout: opts.busyTimeoutMs ?? 2_000,
    });
    try {
      if (!opts.readonly) {
        this.db.pragma("journal_mode = WAL");
        this.db.pragma("synchronous = FULL");
        this.db.exec(SCHEMA);
        if (opts.maxSizeBytes !== undefined) {
          const pageSize = this.db.pragma("page_size", { simple: true }) as number;
          this.db.pragma(`max_page_count = ${Math.max(1, Math.floor(opts.maxSizeBytes / pageSize))}`);
        }
      }
      this.stmts = this.prepare();
      this.runInTransaction = this.db.transaction((fn: () => unknown) => fn());
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private prepare() {
    const db = this.db;
    return {
      metaGet: db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?"),
      metaPut: db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)"),
      last: db.prepare<[], { seq: number; hash: Buffer }>("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"),
      count: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM records"),
      dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
      insertRecord: db.prepare(
        "INSERT INTO records (seq, time, type, call_id, subject, connector, tool, outcome, hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      insertNode: db.prepare("INSERT INTO nodes (leaf, level, hash) VALUES (?, ?, ?)"),
      leafHash: db.prepare<[number], { hash: Buffer }>("SELECT hash FROM records WHERE seq = ?"),
      node: db.prepare<[number, number], { hash: Buffer }>("SELECT hash FROM nodes WHERE leaf = ? AND level = ?"),
      record: db.prepare<[number], unknown[]>(`SELECT ${FULL_COLUMNS} FROM records WHERE seq = ?`).raw(),
      maxNodeLeaf: db.prepare<[], { m: number | null }>("SELECT max(leaf) AS m FROM nodes"),
      recordsFrom: db
        .prepare<[number, number, number], [number, Buffer, Buffer]>(
          "SELECT seq, hash, body FROM records WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?",
        )
        .raw(),
      fullRecordsFrom: db
        .prepare<[number, number, number], unknown[]>(
          `SELECT ${FULL_COLUMNS} FROM records WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?`,
        )
        .raw(),
      nodesFrom: db
        .prepare<[number, number], [number, number, Buffer]>(
          "SELECT leaf, level, hash FROM nodes WHERE leaf >= ? AND leaf < ? ORDER BY leaf, level",
        )
        .raw(),
      segmentRecords: db
        .prepare<[number, number, number], [number, string | null]>(
          "SELECT seq, CASE WHEN typeof(hash) = 'blob' " +
            "THEN hex(hash) || json_array(time, type, call_id, subject, connector, tool, outcome) || x'00' || body END " +
            "FROM records WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?",
        )
        .raw(),
      segmentNodes: db
        .prepare<[number, number], [number, Buffer | null]>(
          "SELECT count(*), unhex(group_concat(CASE WHEN typeof(leaf) = 'integer' AND leaf >= 0 " +
            "AND typeof(level) = 'integer' AND level BETWEEN 0 AND 255 AND typeof(hash) = 'blob' AND length(hash) = 32 " +
            `THEN printf('%016x%02x', leaf, level) || hex(hash) ELSE '${"ff".repeat(41)}' END, '')) ` +
            "FROM (SELECT leaf, level, hash FROM nodes WHERE leaf >= ? AND leaf < ? ORDER BY leaf, level)",
        )
        .raw(),
      insertCheckpoint: db.prepare("INSERT INTO checkpoints (size, time, root, note) VALUES (?, ?, ?, ?)"),
      latestCheckpoint: db.prepare<[], CheckpointRow>(
        "SELECT id, size, time, root, note FROM checkpoints ORDER BY size DESC, id DESC LIMIT 1",
      ),
      checkpoints: db.prepare<[], CheckpointRow>("SELECT id, size, time, root, note FROM checkpoints ORDER BY size, id"),
      checkpointAtLeast: db.prepare<[number], CheckpointRow>(
        "SELECT id, size, time, root, note FROM checkpoints WHERE size >= ? ORDER BY size DESC, id DESC LIMIT 1",
      ),
      triggers: db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'trigger'"),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /**
   * synchronous=NORMAL: a commit writes the write-ahead log but leaves its fsync to the caller
   * (WalSync). Only for a writer that makes its commits durable itself before it reports them.
   */
  leaveCommitSyncToCaller(): void {
    this.db.pragma("synchronous = NORMAL");
  }

  getMeta(key: string): string | undefined {
    return this.stmts.metaGet.get(key)?.value;
  }

  putMeta(key: string, value: string): void {
    this.stmts.metaPut.run(key, value);
  }

  /** Creates the append-only triggers; returns the ones that were missing (a sign of tampering on a used log). */
  ensureTriggers(): string[] {
    const missing = this.missingTriggers();
    if (missing.length > 0) this.db.exec(triggersSql());
    return missing;
  }

  missingTriggers(): string[] {
    const have = new Set(this.stmts.triggers.all().map((r) => r.name));
    return TABLES.flatMap((t) => [`${t}_no_update`, `${t}_no_delete`]).filter((n) => !have.has(n));
  }

  /** Next sequence number (records are numbered from 0 without gaps). */
  size(): number {
    const last = this.stmts.last.get();
    return last === undefined ? 0 : last.seq + 1;
  }

  rowCount(): number {
    return this.stmts.count.get()?.n ?? 0;
  }

  /**
   * SQLite's data_version: changes when another connection (any process) has committed since this
   * connection last read it; this connection's own commits leave it alone.
   */
  dataVersion(): number {
    return this.stmts.dataVersion.get()!;
  }

  lastRecord(): { seq: number; hash: Buffer } | undefined {
    return this.stmts.last.get();
  }

  /**
   * Runs `fn` in a BEGIN IMMEDIATE transaction: the write lock is taken before anything is read,
   * so `fn` sees the latest commit of every process sharing the file and nobody else can append
   * until it commits. Waits up to busyTimeoutMs for the lock, then throws SQLITE_BUSY. If `fn`
   * throws, nothing it wrote is kept.
   */
  writeTransaction<T>(fn: () => T): T {
    return this.runInTransaction.immediate(fn) as T;
  }

  /** Inserts records and the Merkle nodes they complete; call inside writeTransaction. */
  insertBatch(records: readonly NewRecord[], nodes: readonly CompletedNode[]): void {
    // One single-row statement per row: measured faster here than multi-row VALUES lists, whose
    // parameter binding costs more than the calls they save.
    const { insertRecord, insertNode } = this.stmts;
    for (const r of records) {
      const c = r.columns;
      insertRecord.run(r.seq, c.time, c.type, c.callId, c.subject, c.connector, c.tool, c.outcome, r.hash, r.body);
    }
    for (const n of nodes) insertNode.run(n.leaf, n.level, n.hash);
  }

  insertCheckpoint(size: number, time: string, root: Buffer, note: string): void {
    this.stmts.insertCheckpoint.run(size, time, root, note);
  }

  latestCheckpoint(): CheckpointRow | undefined {
    return this.stmts.latestCheckpoint.get();
  }

  /** The latest checkpoint covering at least `size` records. */
  checkpointCovering(size: number): CheckpointRow | undefined {
    return this.stmts.checkpointAtLeast.get(size);
  }

  checkpoints(): CheckpointRow[] {
    return this.stmts.checkpoints.all();
  }

  /** Reads stored perfect-subtree hashes; a missing one means the store is damaged. */
  nodeReader(): NodeReader {
    return {
      node: (level: number, index: number): Buffer => {
        const row =
          level === 0 ? this.stmts.leafHash.get(index) : this.stmts.node.get(lastLeafOf(level, index), level);
        if (!row) throw new Error(`audit store is missing Merkle node (level ${level}, index ${index})`);
        return row.hash;
      },
    };
  }

  /** Up to `limit` rows with from <= seq < to, in order (possibly with gaps if rows were deleted). */
  recordChunk(from: number, to: number, limit: number): [number, Buffer, Buffer][] {
    return this.stmts.recordsFrom.all(from, to, limit);
  }

  fullRecordChunk(from: number, to: number, limit: number): FullRecordRow[] {
    return this.stmts.fullRecordsFrom.all(from, to, limit).map((r) => fromFullRow(r as unknown[]));
  }

  /**
   * Rows for the fast verification path, one string each: the stored hash in hex (64 characters),
   * SQLite's JSON array of the query columns, a NUL, and the record's bytes decoded as UTF-8 (the
   * caller proves by hashing that the decoding lost nothing). A string, not Buffers: V8 makes a
   * string of text several times faster than a Buffer. Null when the hash is not a blob (the
   * caller checks its length by its hex); throws when a query column holds a blob (json_array
   * refuses one).
   */
  segmentRecords(from: number, to: number, limit: number): [number, string | null][] {
    return this.stmts.segmentRecords.all(from, to, limit);
  }

  /**
   * The Merkle nodes stored for leaves [fromLeaf, toLeaf) in (leaf, level) order as one buffer of
   * 41-byte entries: leaf (8 bytes, big-endian), level (1 byte), hash (32 bytes). A node whose
   * columns are not of those types and sizes becomes 41 bytes of 0xff, which matches no node.
   */
  segmentNodes(fromLeaf: number, toLeaf: number): { count: number; entries: Buffer | null } {
    const [count, entries] = this.stmts.segmentNodes.get(fromLeaf, toLeaf)!;
    return { count, entries };
  }

  /** Highest leaf any stored Merkle node covers; nodes past the last record betray a deleted tail. */
  maxNodeLeaf(): number | undefined {
    return this.stmts.maxNodeLeaf.get()?.m ?? undefined;
  }

  nodeChunk(fromLeaf: number, toLeaf: number): [number, number, Buffer][] {
    return this.stmts.nodesFrom.all(fromLeaf, toLeaf);
  }

  record(seq: number): FullRecordRow | undefined {
    const row = this.stmts.record.get(seq);
    return row === undefined ? undefined : fromFullRow(row);
  }

  /** Filtered records in sequence order, after `afterSeq` (ascending) or before it (descending). */
  query(filter: RecordFilter, cursor: number | undefined, limit: number, descending: boolean): FullRecordRow[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const eq = (col: string, v: string | undefined): void => {
      if (v !== undefined) {
        where.push(`${col} = ?`);
        params.push(v);
      }
    };
    if (filter.from !== undefined) {
      where.push("time >= ?");
      params.push(filter.from);
    }
    if (filter.to !== undefined) {
      where.push("time < ?");
      params.push(filter.to);
    }
    eq("subject", filter.subject);
    eq("tool", filter.tool);
    eq("connector", filter.connector);
    eq("outcome", filter.outcome);
    eq("call_id", filter.callId);
    eq("type", filter.type);
    if (cursor !== undefined) {
      where.push(descending ? "seq < ?" : "seq > ?");
      params.push(cursor);
    }
    const sql =
      `SELECT ${FULL_COLUMNS} FROM records` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      ` ORDER BY seq ${descending ? "DESC" : "ASC"} LIMIT ?`;
    params.push(limit);
    return this.db
      .prepare(sql)
      .raw()
      .all(...params)
      .map((r) => fromFullRow(r as unknown[]));
  }
}

const FULL_COLUMNS = "seq, hash, body, time, type, call_id, subject, connector, tool, outcome";

function fromFullRow(r: unknown[]): FullRecordRow {
  const [seq, hash, body, time, type, callId, subject, connector, tool, outcome] = r as [
    number,
    Buffer,
    Buffer,
    string,
    string,
    string | null,
    string | null,
    string | null,
    string | null,
    string | null,
  ];
  return { seq, hash, body, columns: { time, type, callId, subject, connector, tool, outcome } };
}
