import { connect as netConnect } from "node:net";
import pg from "pg";
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
import { RowCollector } from "./values.js";

export interface PoolOptions {
  readonly max: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

const TYPE_NAMES: Record<number, string> = {
  16: "bool",
  17: "bytea",
  20: "int8",
  21: "int2",
  23: "int4",
  25: "text",
  114: "json",
  700: "float4",
  701: "float8",
  790: "money",
  1042: "bpchar",
  1043: "varchar",
  1082: "date",
  1083: "time",
  1114: "timestamp",
  1184: "timestamptz",
  1186: "interval",
  1700: "numeric",
  2950: "uuid",
  3802: "jsonb",
};

/**
 * Dates stay as the server's calendar date and timestamps without a zone stay zone-less: pg's
 * default parses both as local-time Date objects, which shifts them by the gateway's offset.
 * int8 and numeric keep pg's default (decimal strings), so no value ever loses precision.
 */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (format !== "binary") {
      if (oid === 1082) return (v: string) => v;
      if (oid === 1114) return (v: string) => v.replace(" ", "T");
    }
    return format === "binary" ? pg.types.getTypeParser(oid, "binary") : pg.types.getTypeParser(oid, "text");
  },
} as pg.CustomTypesConfig;

const CONNECTION_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);

export function classifyPg(err: unknown): SqlFailure {
  if (err instanceof SqlFailure) return err;
  const code =
    typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : undefined;
  const message = sanitizeDbMessage((err as Error | undefined)?.message);
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    let category: FailureCategory = "sql";
    if (code === "57014") category = "timeout";
    // Protocol violation: the number of bound values does not match the placeholders.
    else if (code === "08P01") category = "syntax";
    else if (code === "25006") category = "readonly";
    else if (code.startsWith("42") && code !== "42501") category = "syntax";
    else if (code.startsWith("23")) category = "constraint";
    else if (code.startsWith("22")) category = "data";
    else if (/^(08|28|3D|53|57P)/.test(code)) category = "unavailable";
    if (category === "unavailable")
      return new SqlFailure(category, `database unreachable (${message})`, code, err);
    // `detail` and `where` can quote other rows' values; only the primary message is kept.
    return new SqlFailure(category, message, code, err);
  }
  if (code !== undefined && CONNECTION_ERRNOS.has(code)) {
    return new SqlFailure("unavailable", `database unreachable (${code})`, code, err);
  }
  if (/connection terminated|timeout exceeded when trying to connect|Connection terminated/i.test(message)) {
    return new SqlFailure("unavailable", `database unreachable (${message})`, undefined, err);
  }
  return new SqlFailure("sql", message || "database error", code, err);
}

/**
 * PostgreSQL through a pg Pool. Every statement runs in the extended query protocol (one
 * statement per Parse, so `COMMIT; DELETE ...` cannot smuggle a second one), with a
 * per-call `statement_timeout`; read-only work runs inside `BEGIN READ ONLY` and is rolled back.
 * On timeout or cancellation the statement is cancelled with the protocol's CancelRequest and
 * its connection is discarded.
 */
export class PostgresEngine implements Engine {
  readonly name = "postgres" as const;
  private readonly pool: pg.Pool;
  private readonly target: { host: string; port: number };
  private readonly logger: Logger;
  private readonly guarded = new WeakSet<pg.PoolClient>();
  private closed = false;

  constructor(url: string, pool: PoolOptions, logger: Logger) {
    this.logger = logger;
    const parsed = new URL(url);
    this.target = {
      host: decodeURIComponent(parsed.hostname || "localhost"),
      port: Number(parsed.port || 5432),
    };
    this.pool = new pg.Pool({
      connectionString: url,
      max: pool.max,
      idleTimeoutMillis: pool.idleTimeoutMs,
      connectionTimeoutMillis: pool.connectTimeoutMs,
      allowExitOnIdle: true,
      keepAlive: true,
      application_name: "portcullis",
      types,
    });
    // An idle connection the server dropped (restart, pg_terminate_backend) emits here; the pool
    // has already discarded it, and the next call opens a fresh one.
    this.pool.on("error", (err) => {
      this.logger.warn({ code: (err as { code?: string }).code }, "postgres idle connection lost");
    });
  }

  async execute(req: ExecRequest): Promise<ExecResult> {
    const started = Date.now();
    const remaining = () => Math.max(1, req.timeoutMs - (Date.now() - started));
    // A connection killed while idle is only noticed when used. The preamble runs none of the
    // caller's SQL, so a preamble failure on a dead connection is retried once on a fresh one.
    for (let attempt = 0; ; attempt++) {
      const client = await this.connect(remaining(), req.signal);
      try {
        await withDeadline(
          client.query(
            req.readOnly
              ? `BEGIN READ ONLY; SET LOCAL statement_timeout = ${remaining()}`
              : `SET statement_timeout = ${remaining()}`,
          ),
          remaining(),
          req.signal,
          () => {},
        );
      } catch (err) {
        const f = classifyPg(err);
        client.release(true);
        if (f.category === "unavailable" && attempt === 0) continue;
        throw f;
      }
      return this.run(client, req, remaining());
    }
  }

  private async run(client: pg.PoolClient, req: ExecRequest, timeoutMs: number): Promise<ExecResult> {
    const collector = new RowCollector(req.maxRows, req.maxBytes);
    const query = new pg.Query({
      text: req.sql,
      values: [...req.params],
      queryMode: "extended",
    } as pg.QueryConfig);
    const work = new Promise<ExecResult>((resolve, reject) => {
      query.on("row", (row: Record<string, unknown>) => {
        // Rows past the cap still arrive from the server but are dropped, so memory stays bounded.
        collector.add(row);
      });
      query.on("error", reject);
      query.on("end", (result: pg.QueryResult) => {
        const fields = result.fields ?? [];
        const command = result.command ?? "";
        if (fields.length === 0) {
          resolve({ kind: "write", rowsAffected: result.rowCount ?? 0 });
          return;
        }
        const columns: ColumnInfo[] = fields.map((f) =>
          TYPE_NAMES[f.dataTypeID] ? { name: f.name, type: TYPE_NAMES[f.dataTypeID]! } : { name: f.name },
        );
        resolve({
          kind: "rows",
          rows: collector.rows,
          truncated: collector.truncated,
          columns,
          ...(command === "SELECT" || command === "" ? {} : { rowsAffected: result.rowCount ?? 0 }),
        });
      });
    });
    client.query(query);
    let result: ExecResult;
    try {
      result = await withDeadline(work, timeoutMs, req.signal, () => this.cancel(client));
    } catch (err) {
      const f = classifyPg(err);
      if (f.category === "timeout" && !(err instanceof SqlFailure)) {
        // The server's statement_timeout fired first: same outcome, our wording.
        client.release(true);
        throw timeoutFailure(timeoutMs);
      }
      if (err instanceof SqlFailure) {
        // withDeadline fired: cancel() has already been sent; the connection is not reused.
        client.release(true);
        throw err;
      }
      if (connectionIntact(f) && req.readOnly) {
        await this.rollback(client);
      } else {
        client.release(!connectionIntact(f));
      }
      throw f;
    }
    if (req.readOnly) await this.rollback(client);
    else client.release();
    return result;
  }

  private async rollback(client: pg.PoolClient): Promise<void> {
    try {
      await client.query("ROLLBACK");
      client.release();
    } catch {
      client.release(true);
    }
  }

  private async connect(timeoutMs: number, signal: AbortSignal): Promise<pg.PoolClient> {
    if (this.closed) throw new SqlFailure("unavailable", "the connector is closed");
    const pending = this.pool.connect();
    try {
      const client = await withDeadline(pending, timeoutMs, signal, () => {
        // If the pool hands the connection over later, give it straight back.
        pending.then(
          (c) => c.release(),
          () => {},
        );
      });
      // pg-pool listens for errors only on idle clients. A connection lost while checked out
      // emits 'error' too (besides failing the query), which would crash the process unheard.
      if (!this.guarded.has(client)) {
        this.guarded.add(client);
        client.on("error", (err) => {
          this.logger.debug(
            { code: (err as { code?: string }).code },
            "postgres connection lost during a call",
          );
        });
      }
      return client;
    } catch (err) {
      throw connectFailure(classifyPg(err), err);
    }
  }

  /** Sends a protocol CancelRequest for the statement running on `client`, then drops the socket. */
  private cancel(client: pg.PoolClient): void {
    const { processID, secretKey } = client as unknown as { processID?: number; secretKey?: number };
    if (typeof processID !== "number" || typeof secretKey !== "number") return;
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processID, 8);
    packet.writeInt32BE(secretKey, 12);
    const socket = netConnect(this.target.port, this.target.host, () => socket.end(packet));
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on("error", (err) =>
      this.logger.warn({ code: (err as { code?: string }).code }, "postgres cancel failed"),
    );
  }

  async health(timeoutMs: number): Promise<Health> {
    const ac = new AbortController();
    try {
      const result = await this.execute({
        key: undefined,
        sql: "SELECT 1 AS ok",
        params: [],
        readOnly: true,
        maxRows: 1,
        maxBytes: 1_024,
        timeoutMs,
        signal: ac.signal,
      });
      return { ok: result.kind === "rows" };
    } catch (err) {
      return { ok: false, detail: classifyPg(err).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
