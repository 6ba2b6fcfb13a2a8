import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { GatewayError, type ConnectorDeps, type ConnectorFactory } from "../../core/index.js";
import { dialectOf, sqlConfigSchema, statementProblems, type SqlConfig } from "./config.js";
import { SqlConnector } from "./connector.js";
import type { Engine } from "./engine.js";
import { MysqlEngine } from "./mysql-engine.js";
import { PostgresEngine, type PoolOptions } from "./postgres-engine.js";
import { SqliteEngine, SqliteInitError } from "./sqlite-engine.js";
import { declaredTool, engineLabel, queryTool, type PreparedTool } from "./tools.js";

export type { SqlConfig } from "./config.js";

const DEFAULT_POOL: PoolOptions = { max: 10, idleTimeoutMs: 30_000, connectTimeoutMs: 5_000 };
const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
const DEFAULT_PROCESSES = 2;

async function openEngine(
  config: SqlConfig,
  declared: readonly PreparedTool[],
  deps: ConnectorDeps,
  label: string,
): Promise<Engine> {
  const logger = deps.logger.child({ connector: config.name, engine: config.engine });
  if (config.engine === "sqlite") {
    const file = resolve(deps.baseDir, config.file);
    if (!existsSync(file)) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `${label}: database file ${config.file} does not exist (resolved against ${deps.baseDir})`,
      );
    }
    try {
      return await SqliteEngine.open({
        file,
        busyTimeoutMs: config.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
        processes: config.processes ?? DEFAULT_PROCESSES,
        // Each worker prepares every declared statement when it starts, so bad SQL fails at load.
        statements: declared.map((t) => ({
          key: t.definition.operation,
          sql: t.statement.text,
          readOnly: t.config.readOnly,
        })),
        logger,
      });
    } catch (err) {
      throw initError(err, label, config.file);
    }
  }
  const pool: PoolOptions = {
    max: config.pool?.max ?? DEFAULT_POOL.max,
    idleTimeoutMs: config.pool?.idleTimeoutMs ?? DEFAULT_POOL.idleTimeoutMs,
    connectTimeoutMs: config.pool?.connectTimeoutMs ?? DEFAULT_POOL.connectTimeoutMs,
  };
  // Pools connect lazily: a database that is down at startup is reported per call and by
  // health(), and the connector recovers on its own when it returns.
  if (config.engine === "postgres") return new PostgresEngine(config.url, pool, logger);
  return new MysqlEngine(config.url, pool, logger);
}

function initError(err: unknown, label: string, file: string): GatewayError {
  if (err instanceof SqliteInitError) {
    const f = err.failure;
    const where = f.key === undefined ? `database ${file}` : `tool "${f.key}"`;
    return new GatewayError("CONFIG_INVALID", `${label}: ${where}: ${f.message}`, { cause: err });
  }
  return new GatewayError("CONFIG_INVALID", `${label}: cannot start the SQLite worker`, { cause: err });
}

/** `kind: "sql"`: declared SQL statements (and optionally a read-only query tool) as MCP tools. */
export const sqlFactory = {
  kind: "sql",
  configSchema: sqlConfigSchema,
  async create(config, deps) {
    const label = engineLabel(config);
    const problems = statementProblems(config);
    if (problems.length > 0) {
      throw new GatewayError("CONFIG_INVALID", `${problems.map((p) => p.message).join("; ")}`);
    }
    const dialect = dialectOf(config);
    const declared = (config.tools ?? []).map((t) => declaredTool(config, t, dialect));
    const query = config.query?.enabled ? queryTool(config, dialect) : undefined;
    const engine = await openEngine(config, declared, deps, label);
    return new SqlConnector(config, engine, dialect, declared, query, deps.logger);
  },
} satisfies ConnectorFactory<SqlConfig>;
