import type { EventEmitter } from "node:events";
import mysql from "mysql2/promise";
import type { FieldPacket, PoolConnection, ResultSetHeader } from "mysql2/promise";
import type { Logger } from "pino";
import type { Health } from "../../core/index.js";
import { timeoutFailure, withDeadline } from "./deadline.js";
import {
  sanitizeDbMessage,
  SqlFailure,
  type ColumnInfo,
  type Engine,
  connectionIntact,
  connectFailure,
  type ExecRequest,
  type ExecResult,
  type FailureCategory,
} from "./engine.js";
import type { PoolOptions } from "./postgres-engine.js";
import { RowCollector, toJsonValue } from "./values.js";

interface StreamingConnection {
  execute(options: { sql: string; values: unknown[] }): EventEmitter;
}

const TYPE_NAMES: Record<number, string> = {
  1: "tinyint",
  2: "smallint",
  3: "int",
  4: "float",
  5: "double",
  7: "timestamp",
  8: "bigint",
  9: "mediumint",
  10: "date",
  11: "time",
  12: "datetime",
  13: "year",
  15: "varchar",
  16: "bit",
  245: "json",
  246: "decimal",
  252: "blob",
  253: "varchar",
  254: "char",
};
const DATETIME_TYPES = new Set([7, 12, 17, 18]);

const CONNECTION_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_ACCESS_DENIED_ERROR",
  "ER_DBACCESS_DENIED_ERROR",
  "ER_BAD_DB_ERROR",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "ER_CONNECTION_KILLED",
  "ER_NORMAL_SHUTDOWN",
]);
const SYNTAX_ERRNOS = new Set([
  1210, 1064, 1146, 1054, 1305, 1149, 1052, 1051, 1109, 1247, 1630, 1582, 1583, 1584,
]);
const CONSTRAINT_ERRNOS = new Set([1062, 1451, 1452, 1048, 3819, 4025, 1216, 1217, 1557, 1586]);
const DATA_ERRNOS = new Set([1264, 1265, 1292, 1366, 1406, 1411, 1367, 3140, 1690]);

export function classifyMysql(err: unknown): SqlFailure {
  if (err instanceof SqlFailure) return err;
  const e = err as { code?: unknown; errno?: unknown; message?: unknown; fatal?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const errno = typeof e.errno === "number" ? e.errno : undefined;
  if (code !== undefined && CONNECTION_ERRNOS.has(code)) {
    return new SqlFailure("unavailable", `database unreachable (${code})`, code, err);
  }
  if (errno === 1062) {
    // "Duplicate entry '<value>' for key ..." quotes a value another row holds: keep only the key.
    const key = /for key '([^']*)'/.exec(String(e.message))?.[1];
    return new SqlFailure("constraint", `duplicate value for unique key${key ? ` '${key}'` : ""}`, code, err);
  }
  let category: FailureCategory = "sql";
  if (errno === 3024 || errno === 1969 || errno === 1317) category = "timeout";
  else if (errno === 1792 || errno === 1290 || errno === 1142 || errno === 1227) category = "readonly";
  else if (errno !== undefined && SYNTAX_ERRNOS.has(errno)) category = "syntax";
  else if (errno !== undefined && CONSTRAINT_ERRNOS.has(errno)) category = "constraint";
  else if (errno !== undefined && DATA_ERRNOS.has(errno)) category = "data";
  else if (e.fatal === true) category = "unavailable";
  const message = sanitizeDbMessage(e.message);
  if (category === "unavailable")
    return new SqlFailure(category, `database unreachable (${code ?? message})`, code, err);
  return new SqlFailure(category, message || "database error", code, err);
}

/**
 * MySQL / MariaDB through a mysql2 pool. Statements run as server-side prepared statements
 * (binary protocol: values are bound, and a prepared statement is always exactly one
 * statement), with `multipleStatements: false` besides. The per-call budget is set as
 * `max_execution_time` (MySQL, SELECT only) or `max_statement_time` (MariaDB, any statement),
 * and on timeout or cancellation `KILL QUERY` stops the statement and the connection is dropped.
 */
export class MysqlEngine implements Engine {
  readonly name = "mysql" as const;
  private readonly pool: mysql.Pool;
  private readonly url: string;
  private readonly connectTimeoutMs: number;
  private readonly logger: Logger;
  private closed = false;

  constructor(url: string, pool: PoolOptions, logger: Logger) {
    this.url = url;
    this.logger = logger;
    this.connectTimeoutMs = pool.connectTimeoutMs;
    this.pool = mysql.createPool({
      uri: url,
      connectionLimit: pool.max,
      maxIdle: pool.max,
      idleTimeout: pool.idleTimeoutMs,
      connectTimeout: pool.connectTimeoutMs,
      waitForConnections: true,
      queueLimit: 0,
      enableKeepAlive: true,
      multipleStatements: false,
      namedPlaceholders: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
      dateStrings: true,
      maxPreparedStatements: 256,
      // LOAD DATA LOCAL would let a statement read files from the gateway's host.
      infileStreamFactory: undefined,
      flags: ["-LOCAL_FILES"],
    });
  }

  async execute(req: ExecRequest): Promise<ExecResult> {
    const started = Date.now();
    const remaining = () => Math.max(1, req.timeoutMs - (Date.now() - started));
    for (let attempt = 0; ; attempt++) {
      const conn = await this.connect(remaining(), req.signal);
      try {
        // None of the caller's SQL has run yet: a dead pooled connection is retried once.
        await withDeadline(this.preamble(conn, req.readOnly, remaining()), remaining(), req.signal, () => {});
      } catch (err) {
        const f = classifyMysql(err);
        conn.destroy();
        if (f.category === "unavailable" && attempt === 0) continue;
        throw f;
      }
      return this.run(conn, req, remaining());
    }
  }

  private async preamble(conn: PoolConnection, readOnly: boolean, timeoutMs: number): Promise<void> {
    const mariadb = (conn.connection as unknown as { _isMariaDB?: boolean })._isMariaDB === true;
    // Both variables take plain numbers computed here, never caller input.
    await conn.query(
      mariadb
        ? `SET SESSION max_statement_time = ${(timeoutMs / 1000).toFixed(3)}`
        : `SET SESSION max_execution_time = ${Math.ceil(timeoutMs)}`,
    );
    if (readOnly) await conn.query("START TRANSACTION READ ONLY");
  }

  private async run(conn: PoolConnection, req: ExecRequest, timeoutMs: number): Promise<ExecResult> {
    const collector = new RowCollector(req.maxRows, req.maxBytes);
    let fields: FieldPacket[] | undefined;
    let header: ResultSetHeader | undefined;
    const work = new Promise<ExecResult>((resolve, reject) => {
      // The callback-style connection underneath streams rows as events, so rows past the cap
      // are dropped as they arrive instead of being buffered.
      const raw = conn.connection as unknown as StreamingConnection;
      const cmd = raw.execute({ sql: req.sql, values: [...req.params] });
      let failed = false;
      cmd.on("fields", (f: FieldPacket[] | undefined) => {
        if (f) fields = f;
      });
      cmd.on("result", (row: Record<string, unknown> | ResultSetHeader) => {
        if (fields === undefined) {
          header = row as ResultSetHeader;
          return;
        }
        const out = row as Record<string, unknown>;
        for (const f of fields) {
          const v = out[f.name];
          if (typeof v === "string" && DATETIME_TYPES.has(f.columnType ?? f.type ?? 0))
            out[f.name] = v.replace(" ", "T");
        }
        collector.add(out);
      });
      cmd.on("error", (err: unknown) => {
        failed = true;
        reject(err);
      });
      cmd.on("end", () => {
        if (failed) return;
        if (fields !== undefined) {
          const columns: ColumnInfo[] = fields.map((f) => {
            const type = TYPE_NAMES[f.columnType ?? f.type ?? -1];
            return type ? { name: f.name, type } : { name: f.name };
          });
          resolve({ kind: "rows", rows: collector.rows, truncated: collector.truncated, columns });
          return;
        }
        const rowsAffected = header?.affectedRows ?? 0;
        const insertId = header?.insertId;
        resolve(
          insertId !== undefined && insertId !== 0 && String(insertId) !== "0"
            ? { kind: "write", rowsAffected, lastInsertId: toJsonValue(insertId) }
            : { kind: "write", rowsAffected },
        );
      });
    });
    let result: ExecResult;
    try {
      result = await withDeadline(work, timeoutMs, req.signal, () => this.kill(conn));
    } catch (err) {
      const f = classifyMysql(err);
      if (err instanceof SqlFailure) {
        conn.destroy();
        throw err;
      }
      if (f.category === "timeout") {
        conn.destroy();
        throw timeoutFailure(timeoutMs);
      }
      if (connectionIntact(f)) await this.finish(conn, req.readOnly);
      else conn.destroy();
      throw f;
    }
    await this.finish(conn, req.readOnly);
    return result;
  }

  private async finish(conn: PoolConnection, readOnly: boolean): Promise<void> {
    try {
      if (readOnly) await conn.query("ROLLBACK");
      conn.release();
    } catch {
      conn.destroy();
    }
  }

  private async connect(timeoutMs: number, signal: AbortSignal): Promise<PoolConnection> {
    if (this.closed) throw new SqlFailure("unavailable", "the connector is closed");
    const pending = this.pool.getConnection();
    try {
      return await withDeadline(pending, timeoutMs, signal, () => {
        pending.then(
          (c) => c.release(),
          () => {},
        );
      });
    } catch (err) {
      throw connectFailure(classifyMysql(err), err);
    }
  }

  /** Stops the statement on the server from a separate connection; the caller drops `conn`. */
  private kill(conn: PoolConnection): void {
    const threadId = Number(conn.threadId);
    if (!Number.isSafeInteger(threadId) || threadId <= 0) return;
    void (async () => {
      let killer: mysql.Connection | undefined;
      try {
        killer = await mysql.createConnection({ uri: this.url, connectTimeout: this.connectTimeoutMs });
        await killer.query(`KILL QUERY ${threadId}`);
      } catch (err) {
        this.logger.warn({ code: (err as { code?: string }).code }, "mysql KILL QUERY failed");
      } finally {
        killer?.destroy();
      }
    })();
  }

  async health(timeoutMs: number): Promise<Health> {
    try {
      const result = await this.execute({
        key: undefined,
        sql: "SELECT 1 AS ok",
        params: [],
        readOnly: true,
        maxRows: 1,
        maxBytes: 1_024,
        timeoutMs,
        signal: new AbortController().signal,
      });
      return { ok: result.kind === "rows" };
    } catch (err) {
      return { ok: false, detail: classifyMysql(err).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
