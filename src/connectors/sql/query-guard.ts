import { significant, SqlLexError, tokenize, type Dialect, type Token } from "./lexer.js";

/**
 * The lexical layer of the free-form query tool's protection. It is never the only layer: each
 * engine also runs the statement on a read-only connection or in a read-only transaction, one
 * statement at a time. This layer catches what those do not (SQLite ATTACH/PRAGMA, MySQL
 * `INTO OUTFILE`, server functions with effects outside the transaction) and gives the agent a
 * clear reason instead of a driver error.
 */

const FIRST_KEYWORDS: Record<Dialect, ReadonlySet<string>> = {
  sqlite: new Set(["select", "with", "values", "explain"]),
  postgres: new Set(["select", "with", "values", "table", "explain"]),
  mysql: new Set(["select", "with", "values", "table", "explain", "show", "describe", "desc"]),
};

/** Keywords refused anywhere in the statement (outside literals and comments). */
const DENIED_KEYWORDS: Record<Dialect, ReadonlySet<string>> = {
  sqlite: new Set(["attach", "detach", "pragma", "vacuum", "load_extension", "readfile", "writefile"]),
  // SELECT ... INTO creates a table in PostgreSQL and writes files or variables in MySQL.
  postgres: new Set([
    "into",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "set_config",
    "pg_notify",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_lock",
    "pg_try_advisory_xact_lock",
    "pg_advisory_lock_shared",
  ]),
  mysql: new Set([
    "into",
    "outfile",
    "dumpfile",
    "load_file",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "sys_exec",
    "sys_eval",
  ]),
};

export class QueryRefused extends Error {
  override readonly name = "QueryRefused";
}

function word(t: Token): string | undefined {
  if (t.kind === "word") return t.text.toLowerCase();
  if (t.kind === "ident") return t.text.slice(1, -1).toLowerCase();
  return undefined;
}

/** Throws QueryRefused with an agent-readable reason when `sql` is not one read-only query. */
export function assertReadOnlyQuery(sql: string, dialect: Dialect): void {
  let tokens;
  try {
    tokens = tokenize(sql, dialect);
  } catch (err) {
    if (err instanceof SqlLexError) throw new QueryRefused(`cannot parse the query: ${err.message}`);
    throw err;
  }
  if (tokens.some((t) => t.executable)) {
    throw new QueryRefused("executable comments (/*! ... */) are not allowed in the query tool");
  }
  const sig = significant(tokens);
  // Trailing semicolons are harmless; anything after a semicolon is a second statement.
  while (sig.length > 0 && sig[sig.length - 1]!.kind === "semicolon") sig.pop();
  if (sig.length === 0) throw new QueryRefused("the query is empty");
  if (sig.some((t) => t.kind === "semicolon")) {
    throw new QueryRefused("the query tool runs exactly one statement; remove the ';' and what follows");
  }
  const first = word(sig[0]!);
  if (first === undefined || !FIRST_KEYWORDS[dialect].has(first)) {
    throw new QueryRefused(
      `the query tool only runs read-only queries starting with ${[...FIRST_KEYWORDS[dialect]]
        .map((k) => k.toUpperCase())
        .join(", ")}`,
    );
  }
  for (const t of sig) {
    const w = word(t);
    if (w !== undefined && DENIED_KEYWORDS[dialect].has(w)) {
      throw new QueryRefused(`${w.toUpperCase()} is not allowed in the read-only query tool`);
    }
  }
}
