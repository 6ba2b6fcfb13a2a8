/**
 * A SQLite worker process. It exists so that a statement stuck inside one native sqlite3_step
 * (which no JavaScript timer and no Worker.terminate() can interrupt) can be stopped: the parent
 * SIGKILLs this process and starts a fresh one. It serves one request at a time, synchronously.
 */
import Database from "better-sqlite3";
import { sanitizeDbMessage, type ExecResult, type FailureCategory } from "./engine.js";
import { significant, tokenize } from "./lexer.js";
import type { ChildFailure, ChildRequest, ChildResponse, DeclaredStatement } from "./sqlite-protocol.js";
import { RowCollector, toJsonValue } from "./values.js";

type Db = InstanceType<typeof Database>;
type Stmt = ReturnType<Db["prepare"]>;

let rw: Db | undefined;
let ro: Db | undefined;
const prepared = new Map<string, { stmt: Stmt; inserts: boolean }>();

class Failure extends Error {
  readonly failure: ChildFailure;
  constructor(failure: ChildFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

function classify(err: unknown): ChildFailure {
  if (err instanceof Failure) return err.failure;
  const code = (err as { code?: unknown }).code;
  const message = sanitizeDbMessage((err as Error).message);
  if (typeof code === "string" && code.startsWith("SQLITE_")) {
    let category: FailureCategory = "sql";
    if (code.startsWith("SQLITE_CONSTRAINT")) category = "constraint";
    else if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_AUTH") category = "readonly";
    else if (code === "SQLITE_ERROR" || code === "SQLITE_RANGE") category = "syntax";
    else if (/^SQLITE_(CANTOPEN|NOTADB|CORRUPT|IOERR|FULL|PERM)/.test(code)) category = "unavailable";
    return { category, message, dbCode: code };
  }
  // better-sqlite3 raises TypeError/RangeError for binding mistakes and multi-statement input.
  if (err instanceof TypeError || err instanceof RangeError) return { category: "syntax", message };
  return { category: "sql", message: "unexpected error in the SQLite worker" };
}

function startsWithInsert(sql: string): boolean {
  try {
    const first = significant(tokenize(sql, "sqlite"))[0];
    return first !== undefined && /^(insert|replace)$/i.test(first.text);
  } catch {
    return false;
  }
}

function init(file: string, busyTimeoutMs: number, statements: readonly DeclaredStatement[]): void {
  try {
    rw = new Database(file, { fileMustExist: true });
    rw.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
    rw.pragma("foreign_keys = ON");
    // The free-form query tool and declared read-only tools use a connection that cannot write.
    ro = new Database(file, { readonly: true, fileMustExist: true });
    ro.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
    ro.pragma("query_only = ON");
  } catch (err) {
    const f = classify(err);
    throw new Failure({
      ...f,
      category: "unavailable",
      message: `cannot open the database file: ${f.message}`,
    });
  }
  for (const s of statements) {
    let stmt: Stmt;
    try {
      stmt = (s.readOnly ? ro : rw).prepare(s.sql);
    } catch (err) {
      throw new Failure({ ...classify(err), key: s.key });
    }
    if (s.readOnly && !stmt.readonly) {
      throw new Failure({
        category: "readonly",
        message: "the tool is declared readOnly but its statement writes",
        key: s.key,
      });
    }
    prepared.set(s.key, { stmt: stmt.safeIntegers(true), inserts: startsWithInsert(s.sql) });
  }
}

function exec(req: Extract<ChildRequest, { op: "exec" }>): ExecResult {
  if (!rw || !ro) throw new Failure({ category: "unavailable", message: "worker not initialised" });
  let stmt: Stmt;
  let inserts = false;
  if (req.key !== undefined) {
    const p = prepared.get(req.key);
    if (!p) throw new Failure({ category: "sql", message: `unknown statement ${req.key}` });
    stmt = p.stmt;
    inserts = p.inserts;
  } else {
    // Free-form: prepared on the read-only connection, and refused unless SQLite itself says the
    // statement cannot write. Multi-statement input makes prepare() throw.
    stmt = ro.prepare(req.sql);
    if (!stmt.readonly || !stmt.reader) {
      throw new Failure({
        category: "readonly",
        message: "only read-only queries that return rows are allowed",
      });
    }
    stmt.safeIntegers(true);
  }
  if (stmt.reader) {
    const collector = new RowCollector(req.maxRows, req.maxBytes);
    for (const row of stmt.iterate(req.params as unknown[]) as IterableIterator<Record<string, unknown>>) {
      if (!collector.add(row)) break; // leaving the loop finalises the statement
    }
    const columns = stmt.columns().map((c) => (c.type ? { name: c.name, type: c.type } : { name: c.name }));
    return { kind: "rows", rows: collector.rows, truncated: collector.truncated, columns };
  }
  const info = stmt.run(req.params as unknown[]);
  const result: ExecResult = { kind: "write", rowsAffected: info.changes };
  return inserts && info.changes > 0
    ? { ...result, lastInsertId: toJsonValue(info.lastInsertRowid) }
    : result;
}

function reply(msg: ChildResponse): void {
  process.send?.(msg);
}

process.on("message", (raw: ChildRequest) => {
  try {
    switch (raw.op) {
      case "init":
        init(raw.file, raw.busyTimeoutMs, raw.statements);
        reply({ id: raw.id, ok: true, result: null });
        return;
      case "ping":
        ro?.prepare("SELECT 1").get();
        reply({ id: raw.id, ok: true, result: null });
        return;
      case "exec":
        reply({ id: raw.id, ok: true, result: exec(raw) });
        return;
    }
  } catch (err) {
    reply({ id: raw.id, ok: false, error: classify(err) });
  }
});

// The parent going away (even by SIGKILL) closes the IPC channel: never outlive it.
process.on("disconnect", () => process.exit(0));
