import type { Logger } from "pino";
import {
  GatewayError,
  type Connector,
  type ErrorCode,
  type Health,
  type InvocationContext,
  type ToolCall,
  type ToolDefinition,
  type ToolResult,
} from "../../core/index.js";
import { DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_ROWS, type SqlConfig } from "./config.js";
import { SqlFailure, type Engine, type ExecResult } from "./engine.js";
import type { Dialect } from "./lexer.js";
import { assertReadOnlyQuery, QueryRefused } from "./query-guard.js";
import {
  bindArguments,
  bindQueryParams,
  engineLabel,
  QUERY_OPERATION,
  QUERY_SQL_MAX_LENGTH,
  type PreparedTool,
} from "./tools.js";

export const HEALTH_TIMEOUT_MS = 2_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * Who is to blame for each failure. For the free-form query tool the SQL is the agent's, so
 * its syntax errors and write attempts are INVALID_ARGUMENTS; in a declared tool the SQL is the
 * admin's, so the same errors are the backend's (UPSTREAM_ERROR) and never blame the agent.
 */
function codeFor(f: SqlFailure, freeForm: boolean): ErrorCode {
  switch (f.category) {
    case "unavailable":
      return "UPSTREAM_UNAVAILABLE";
    case "timeout":
    case "aborted":
      return "UPSTREAM_TIMEOUT";
    case "syntax":
    case "readonly":
      return freeForm ? "INVALID_ARGUMENTS" : "UPSTREAM_ERROR";
    case "data":
      return "INVALID_ARGUMENTS";
    case "constraint":
    case "sql":
      return "UPSTREAM_ERROR";
  }
}

export class SqlConnector implements Connector {
  readonly kind = "sql";
  readonly name: string;
  private readonly config: SqlConfig;
  private readonly engine: Engine;
  private readonly dialect: Dialect;
  private readonly label: string;
  private readonly declared: ReadonlyMap<string, PreparedTool>;
  private readonly definitions: readonly ToolDefinition[];
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  constructor(
    config: SqlConfig,
    engine: Engine,
    dialect: Dialect,
    declared: readonly PreparedTool[],
    query: ToolDefinition | undefined,
    logger: Logger,
  ) {
    this.name = config.name;
    this.config = config;
    this.engine = engine;
    this.dialect = dialect;
    this.label = engineLabel(config);
    this.declared = new Map(declared.map((t) => [t.definition.operation, t]));
    this.definitions = [...declared.map((t) => t.definition), ...(query ? [query] : [])];
    this.logger = logger;
  }

  tools(): readonly ToolDefinition[] {
    return this.definitions;
  }

  async invoke(call: ToolCall, ctx: InvocationContext): Promise<ToolResult> {
    if (this.closing) throw new GatewayError("SHUTTING_DOWN", `${this.label}: the connector is closed`);
    if (ctx.signal.aborted) throw this.aborted(ctx.signal);
    const op = call.tool.operation;
    // Capped below 2^31 ms: a larger setTimeout delay would fire at once.
    const timeoutMs = Math.min(
      ctx.timeoutMs > 0 ? ctx.timeoutMs : DEFAULT_TIMEOUT_MS,
      this.config.timeoutMs ?? MAX_TIMEOUT_MS,
      MAX_TIMEOUT_MS,
    );
    const maxBytes = this.config.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
    const tool = this.declared.get(op);
    const freeForm = tool === undefined;
    let result: ExecResult;
    try {
      if (tool) {
        result = await this.engine.execute({
          key: op,
          sql: tool.statement.text,
          params: bindArguments(this.label, tool, call.arguments, this.dialect),
          readOnly: tool.config.readOnly,
          maxRows: tool.config.maxRows ?? this.config.maxRows ?? DEFAULT_MAX_ROWS,
          maxBytes,
          timeoutMs,
          signal: ctx.signal,
        });
      } else if (op === QUERY_OPERATION && this.config.query?.enabled) {
        const sql = call.arguments.sql;
        if (typeof sql !== "string" || sql.length === 0 || sql.length > QUERY_SQL_MAX_LENGTH) {
          throw new GatewayError(
            "INVALID_ARGUMENTS",
            `${this.label} tool "query": "sql" must be a non-empty string of at most ${QUERY_SQL_MAX_LENGTH} characters`,
          );
        }
        assertReadOnlyQuery(sql, this.dialect);
        result = await this.engine.execute({
          key: undefined,
          sql,
          params: bindQueryParams(this.label, call.arguments.params, this.dialect),
          readOnly: true,
          maxRows: this.config.query.maxRows ?? this.config.maxRows ?? DEFAULT_MAX_ROWS,
          maxBytes,
          timeoutMs,
          signal: ctx.signal,
        });
      } else {
        throw new GatewayError("TOOL_NOT_FOUND", `${this.label}: no tool "${call.tool.name}"`);
      }
    } catch (err) {
      throw this.toGatewayError(err, op, freeForm, timeoutMs, ctx);
    }
    return render(result);
  }

  async health(): Promise<Health> {
    if (this.closing) return { ok: false, detail: "closed" };
    return this.engine.health(HEALTH_TIMEOUT_MS);
  }

  close(): Promise<void> {
    this.closing ??= this.engine.close();
    return this.closing;
  }

  private aborted(signal: AbortSignal): GatewayError {
    const reason: unknown = signal.reason;
    if (reason instanceof GatewayError) return reason;
    return new GatewayError("UPSTREAM_TIMEOUT", `${this.label}: the call was cancelled before it completed`, {
      cause: reason,
    });
  }

  private toGatewayError(
    err: unknown,
    op: string,
    freeForm: boolean,
    timeoutMs: number,
    ctx: InvocationContext,
  ): GatewayError {
    if (err instanceof GatewayError) return err;
    const where = `${this.label} tool "${op}"`;
    if (err instanceof QueryRefused) {
      return new GatewayError("INVALID_ARGUMENTS", `${where}: ${err.message}`, { cause: err });
    }
    if (err instanceof SqlFailure) {
      if (err.category === "aborted") return this.aborted(ctx.signal);
      if (err.category === "unavailable") {
        ctx.logger.warn({ connector: this.name, dbCode: err.dbCode }, "sql database unreachable");
      }
      const message =
        err.category === "timeout"
          ? `${where}: the statement did not finish within ${timeoutMs} ms and was stopped`
          : err.category === "readonly" && freeForm
            ? `${where}: refused, the query tool only runs read-only queries (${err.message})`
            : err.category === "unavailable"
              ? `${this.label}: ${err.message}`
              : `${where}: ${err.message}`;
      return new GatewayError(codeFor(err, freeForm), message, {
        cause: err,
        ...(err.dbCode === undefined ? {} : { details: { dbCode: err.dbCode } }),
      });
    }
    this.logger.error({ err, connector: this.name, op }, "unexpected sql connector error");
    return new GatewayError("INTERNAL", `${where}: internal error`, { cause: err });
  }
}

function render(result: ExecResult): ToolResult {
  if (result.kind === "write") {
    const structured: Record<string, unknown> = { rowsAffected: result.rowsAffected };
    if (result.lastInsertId !== undefined) structured.lastInsertId = result.lastInsertId;
    return {
      structuredContent: structured,
      text: `${result.rowsAffected} row${result.rowsAffected === 1 ? "" : "s"} affected`,
    };
  }
  const structured: Record<string, unknown> = {
    rows: result.rows,
    rowCount: result.rows.length,
    truncated: result.truncated,
    columns: result.columns,
  };
  if (result.rowsAffected !== undefined) structured.rowsAffected = result.rowsAffected;
  return { structuredContent: structured };
}
