import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteEngine } from "../../../src/connectors/sql/sqlite-engine.js";
import { testLogger } from "../../helpers/logger.js";
import { sqlEngineSuite } from "./engine-suite.js";
import { call, createSql, failure, rows, uniqueName } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "portcullis-sqlite-"));
const file = join(dir, "test.db");
const admin = new Database(file);
admin.pragma("journal_mode = WAL");
admin.pragma("busy_timeout = 5000");

afterAll(() => {
  admin.close();
  rmSync(dir, { recursive: true, force: true });
});

// The query from the brief: it never yields a row, so it never returns from one sqlite3_step.
const NEVER_ENDING = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

sqlEngineSuite({
  engine: "sqlite",
  connection: () => ({ engine: "sqlite", file: "test.db" }),
  baseDir: dir,
  async admin(sql) {
    const stmt = admin.prepare(sql);
    return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
  },
  createTable: (t) =>
    `CREATE TABLE ${t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, big INTEGER, amount TEXT, payload BLOB)`,
  seedFirstRow: (t) =>
    `INSERT INTO ${t} (id, name, big, amount, payload) VALUES (1, 'item-1', 9007199254740993, '12345678901234567.89', X'00ff10')`,
  placeholder: () => "?",
  bigEquals: (t) => `SELECT id FROM ${t} WHERE big = ?`,
  engineWriteAttempts: (t, scratch) => [
    `ATTACH DATABASE '${join(dir, "other.db")}' AS other`,
    "DETACH DATABASE main",
    "PRAGMA writable_schema=1",
    "PRAGMA query_only = OFF",
    `SELECT * FROM ${t}; PRAGMA writable_schema=1`,
    "VACUUM",
    `VACUUM INTO '${join(dir, "copy.db")}'`,
    `SELECT load_extension('x')`,
    // Passes the keyword check: refused because SQLite reports the statement as not read-only.
    `WITH x AS (SELECT 1) DELETE FROM ${t}`,
    `WITH x AS (SELECT 1) INSERT INTO ${scratch} SELECT 1`,
    "BEGIN IMMEDIATE",
    "REINDEX",
    `REPLACE INTO ${t} (id, name) VALUES (1, 'pwned')`,
  ],
  slowQuery: NEVER_ENDING,
  readOnlyCheckedAtLoad: true,
  async close() {},
});

describe("sqlite specifics", () => {
  it("kills a worker stuck in one native sqlite3_step and serves the next call from a fresh one", async () => {
    const c = await createSql(
      {
        kind: "sql",
        name: "single",
        engine: "sqlite",
        file: "test.db",
        processes: 1,
        tools: [{ name: "one", description: "1", statement: "SELECT 1 AS one", readOnly: true }],
        query: { enabled: true },
      },
      dir,
    );
    try {
      const err = await failure(call(c, "query", { sql: NEVER_ENDING }, { timeoutMs: 1_000 }));
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      // With one worker, this call can only succeed if the stuck worker was replaced.
      expect((await rows(c, "one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.close();
    }
  });

  it("defends in depth: the worker refuses writes and multiple statements even without the lexical guard", async () => {
    const t = uniqueName("deep");
    admin.exec(`CREATE TABLE ${t} (id INTEGER)`);
    admin.exec(`INSERT INTO ${t} VALUES (1), (2)`);
    const engine = await SqliteEngine.open({
      file,
      busyTimeoutMs: 1000,
      processes: 1,
      statements: [],
      logger: testLogger,
    });
    const base = {
      key: undefined,
      params: [],
      readOnly: true,
      maxRows: 10,
      maxBytes: 10_000,
      timeoutMs: 5_000,
    };
    try {
      for (const sql of [
        `DELETE FROM ${t}`,
        `SELECT 1; DELETE FROM ${t}`,
        "PRAGMA writable_schema=1",
        "BEGIN",
      ]) {
        await expect(
          engine.execute({ ...base, sql, signal: new AbortController().signal }),
          sql,
        ).rejects.toMatchObject({
          name: "SqlFailure",
        });
      }
      expect(admin.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get()).toEqual({ n: 2 });
    } finally {
      await engine.close();
    }
  });

  it("fails at load when a declared read-only statement writes, naming connector and tool", async () => {
    const t = uniqueName("lie");
    admin.exec(`CREATE TABLE ${t} (id INTEGER)`);
    const err = await failure(
      createSql(
        {
          kind: "sql",
          name: "liar",
          engine: "sqlite",
          file: "test.db",
          tools: [{ name: "sneaky", description: "x", statement: `DELETE FROM ${t}`, readOnly: true }],
        },
        dir,
      ),
    );
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain('connector "liar" (sql, sqlite)');
    expect(err.message).toContain('tool "sneaky"');
    expect(err.message).toContain("readOnly");
  });

  it("fails at load when a statement does not compile against the database", async () => {
    const err = await failure(
      createSql(
        {
          kind: "sql",
          name: "broken",
          engine: "sqlite",
          file: "test.db",
          tools: [
            { name: "bad", description: "x", statement: "SELECT * FROM no_such_table_here", readOnly: true },
          ],
        },
        dir,
      ),
    );
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain('tool "bad"');
    expect(err.message).toContain("no_such_table_here");
  });

  it("fails at load when the database file does not exist", async () => {
    const err = await failure(
      createSql(
        {
          kind: "sql",
          name: "nofile",
          engine: "sqlite",
          file: "missing.db",
          query: { enabled: true },
        },
        dir,
      ),
    );
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("missing.db");
  });

  it("returns lastInsertId for inserts", async () => {
    const t = uniqueName("ins");
    admin.exec(`CREATE TABLE ${t} (id INTEGER PRIMARY KEY, v TEXT)`);
    const c = await createSql(
      {
        kind: "sql",
        name: "ins",
        engine: "sqlite",
        file: "test.db",
        tools: [
          {
            name: "add",
            description: "x",
            statement: `INSERT INTO ${t} (v) VALUES (:v)`,
            parameters: { v: { type: "string" } },
            readOnly: false,
          },
        ],
      },
      dir,
    );
    try {
      const first = await call(c, "add", { v: "a" });
      const second = await call(c, "add", { v: "b" });
      expect(first.structuredContent).toEqual({ rowsAffected: 1, lastInsertId: 1 });
      expect(second.structuredContent).toEqual({ rowsAffected: 1, lastInsertId: 2 });
    } finally {
      await c.close();
    }
  });
});
