import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "pino";

/** Where the demo customers database lives, relative to the repository root. */
export const CUSTOMERS_SQL = join("demo", "customers.sql");
export const CUSTOMERS_DB = join("demo", "data", "customers.db");

function mtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Builds demo/data/customers.db from demo/customers.sql when the database is missing or older
 * than the SQL. The database is written to a temporary file and renamed into place, so a crash
 * or a concurrent start never leaves a half-built database where the connector looks for it.
 * Returns true when it (re)built the file.
 */
export function ensureCustomersDb(repoRoot: string, logger: Logger): boolean {
  const sqlPath = join(repoRoot, CUSTOMERS_SQL);
  const dbPath = join(repoRoot, CUSTOMERS_DB);
  const sqlTime = mtimeMs(sqlPath);
  if (sqlTime === undefined) throw new Error(`demo customers: ${CUSTOMERS_SQL} is missing`);
  const dbTime = mtimeMs(dbPath);
  if (dbTime !== undefined && dbTime >= sqlTime) return false;

  mkdirSync(join(repoRoot, "demo", "data"), { recursive: true });
  const tmp = `${dbPath}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const db = new Database(tmp);
    try {
      db.exec(readFileSync(sqlPath, "utf8"));
      // Fold the WAL into the main file so the renamed file is complete on its own.
      db.pragma("wal_checkpoint(TRUNCATE)");
    } finally {
      db.close();
    }
    // A WAL or shared-memory file left by the previous database would be replayed into the new one.
    for (const suffix of ["-wal", "-shm"]) rmSync(`${dbPath}${suffix}`, { force: true });
    renameSync(tmp, dbPath);
  } finally {
    for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(`${tmp}${suffix}`, { force: true });
  }
  logger.info(
    { file: CUSTOMERS_DB },
    dbTime === undefined ? "demo customers database created" : "demo customers database rebuilt",
  );
  return true;
}

/**
 * The demo customers backend. It is a file, not a server: the `customers` SQL connector opens
 * it, so there is nothing to stop and close() does nothing.
 */
export async function start(opts: { repoRoot: string; logger: Logger }): Promise<{ close(): Promise<void> }> {
  ensureCustomersDb(opts.repoRoot, opts.logger);
  return { close: async () => {} };
}
