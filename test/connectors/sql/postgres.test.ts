import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresEngine } from "../../../src/connectors/sql/postgres-engine.js";
import { serviceUrl } from "../../helpers/services.js";
import { testLogger } from "../../helpers/logger.js";
import { sqlEngineSuite } from "./engine-suite.js";
import { call, closedPort, createSql, failure, rows, TcpRelay, uniqueName, waitUntil } from "./helpers.js";

const url = serviceUrl("postgres");

describe.skipIf(!url)("postgres", () => {
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  const q = async (sql: string) => (await admin.query(sql)).rows as Record<string, unknown>[];

  afterAll(async () => {
    await admin.end();
  });

  sqlEngineSuite({
    engine: "postgres",
    connection: () => ({ engine: "postgres", url: url!, pool: { max: 4 } }),
    admin: q,
    createTable: (t) =>
      `CREATE TABLE ${t} (id bigint PRIMARY KEY, name text NOT NULL UNIQUE, big bigint, amount numeric(20,2), payload bytea)`,
    seedFirstRow: (t) =>
      `INSERT INTO ${t} (id, name, big, amount, payload) VALUES (1, 'item-1', 9007199254740993, 12345678901234567.89, '\\x00ff10'::bytea)`,
    placeholder: (n) => `$${n}`,
    bigEquals: (t) => `SELECT id FROM ${t} WHERE big = $1`,
    engineWriteAttempts: (t, scratch) => [
      // Passes the keyword check: refused by BEGIN READ ONLY.
      `WITH x AS (DELETE FROM ${t} RETURNING *) SELECT * FROM x`,
      `WITH x AS (UPDATE ${t} SET name = 'pwned' RETURNING *) SELECT count(*) FROM x`,
      `SELECT * INTO ${scratch} FROM ${t}`,
      "SET statement_timeout = 0",
      "SET LOCAL default_transaction_read_only = off",
      "SELECT set_config('default_transaction_read_only', 'off', false)",
      "SELECT pg_terminate_backend(pg_backend_pid())",
      `SELECT pg_catalog."pg_terminate_backend"(1)`,
      `TRUNCATE ${t}`,
      `COPY ${t} TO '/tmp/x'`,
      `SELECT lo_export(1, '/tmp/x')`,
      "SELECT pg_read_file('/etc/passwd')",
      `EXPLAIN ANALYZE DELETE FROM ${t}`,
      `SELECT 1 $$;$$; DELETE FROM ${t}`,
    ],
    slowQuery: "SELECT pg_sleep(30) AS slept",
    running: async (sql) =>
      (
        await admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = $1 AND state = 'active'",
          [sql],
        )
      ).rows[0].n as number,
    readOnlyCheckedAtLoad: false,
    async close() {},
  });

  describe("postgres specifics", () => {
    const table = uniqueName("pgx");
    beforeAll(async () => {
      await q(
        `CREATE TABLE ${table} (id int PRIMARY KEY, at timestamptz, day date, local timestamp, j jsonb)`,
      );
      await q(
        `INSERT INTO ${table} VALUES (1, '2024-03-01T10:20:30.123Z', '2024-03-01', '2024-03-01 10:20:30', '{"a":[1,2]}')`,
      );
    });
    afterAll(async () => {
      await q(`DROP TABLE IF EXISTS ${table}`);
    });

    it("renders dates as ISO strings without shifting calendar dates", async () => {
      const c = await createSql({
        kind: "sql",
        name: "pgdates",
        engine: "postgres",
        url,
        query: { enabled: true },
      });
      try {
        const r = await rows(c, "query", { sql: `SELECT at, day, local, j FROM ${table}` });
        expect(r.rows[0]).toEqual({
          at: "2024-03-01T10:20:30.123Z",
          day: "2024-03-01",
          local: "2024-03-01T10:20:30",
          j: { a: [1, 2] },
        });
        expect(r.columns).toEqual([
          { name: "at", type: "timestamptz" },
          { name: "day", type: "date" },
          { name: "local", type: "timestamp" },
          { name: "j", type: "jsonb" },
        ]);
      } finally {
        await c.close();
      }
    });

    it("refuses a second statement at the protocol level even without the lexical guard", async () => {
      const engine = new PostgresEngine(
        url!,
        { max: 1, idleTimeoutMs: 1000, connectTimeoutMs: 2000 },
        testLogger,
      );
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
          `COMMIT; DELETE FROM ${table}`,
          `DELETE FROM ${table}`,
          `SELECT 1; DELETE FROM ${table}`,
        ]) {
          await expect(
            engine.execute({ ...base, sql, signal: new AbortController().signal }),
            sql,
          ).rejects.toMatchObject({
            name: "SqlFailure",
          });
        }
        expect((await q(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n).toBe(1);
      } finally {
        await engine.close();
      }
    });

    it("reports a closed port as UPSTREAM_UNAVAILABLE without the credentials", async () => {
      const port = await closedPort();
      const c = await createSql({
        kind: "sql",
        name: "pgdown",
        engine: "postgres",
        url: `postgres://portcullis:S3cretPassw0rd@127.0.0.1:${port}/test`,
        pool: { connectTimeoutMs: 1_000 },
        query: { enabled: true },
      });
      try {
        const err = await failure(call(c, "query", { sql: "SELECT 1" }));
        expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
        expect(err.message).toContain('connector "pgdown" (sql, postgres)');
        expect(err.message).toContain("database unreachable");
        expect(err.message).not.toContain("S3cretPassw0rd");
        expect(err.message).not.toContain("portcullis:");
        const health = await c.health();
        expect(health.ok).toBe(false);
        expect(health.detail ?? "").not.toContain("S3cretPassw0rd");
      } finally {
        await c.close();
      }
    });

    it("recovers, with the same connector instance, when the database comes back", async () => {
      const target = new URL(url!);
      const relay = new TcpRelay(target.hostname, Number(target.port || 5432));
      const port = await relay.start();
      const via = new URL(url!);
      via.port = String(port);
      const c = await createSql({
        kind: "sql",
        name: "pgflaky",
        engine: "postgres",
        url: via.toString(),
        pool: { max: 2, connectTimeoutMs: 1_000 },
        query: { enabled: true },
      });
      try {
        expect((await rows(c, "query", { sql: "SELECT 1 AS one" })).rows).toEqual([{ one: 1 }]);
        await relay.stop();
        const err = await failure(call(c, "query", { sql: "SELECT 1 AS one" }));
        expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
        expect(err.message).toContain("database unreachable");
        await relay.start(port);
        expect((await rows(c, "query", { sql: "SELECT 1 AS one" })).rows).toEqual([{ one: 1 }]);
        expect((await c.health()).ok).toBe(true);
      } finally {
        await c.close();
        await relay.stop();
      }
    });

    it("survives its pooled connection being killed with pg_terminate_backend", async () => {
      const c = await createSql({
        kind: "sql",
        name: "pgkill",
        engine: "postgres",
        url,
        pool: { max: 1 },
        query: { enabled: true },
      });
      try {
        const pid = (await rows(c, "query", { sql: "SELECT pg_backend_pid() AS pid" })).rows[0]!.pid;
        await q(`SELECT pg_terminate_backend(${Number(pid)})`);
        const again = await rows(c, "query", { sql: "SELECT pg_backend_pid() AS pid" });
        expect(again.rows[0]!.pid).not.toBe(pid);
      } finally {
        await c.close();
      }
    });

    it("stops a slow declared statement with statement_timeout / cancel", async () => {
      const c = await createSql({
        kind: "sql",
        name: "pgslow",
        engine: "postgres",
        url,
        tools: [
          {
            name: "nap",
            description: "sleeps",
            statement: "SELECT pg_sleep(:seconds) AS napped",
            parameters: { seconds: { type: "number" } },
            required: ["seconds"],
            readOnly: true,
          },
        ],
      });
      try {
        const err = await failure(call(c, "nap", { seconds: 20 }, { timeoutMs: 800 }));
        expect(err.code).toBe("UPSTREAM_TIMEOUT");
        await waitUntil(
          async () =>
            (
              await admin.query(
                "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep($1)%' AND state = 'active'",
              )
            ).rows[0].n === 0,
          "the declared slow statement stopped",
        );
        expect((await rows(c, "nap", { seconds: 0 })).rowCount).toBe(1);
      } finally {
        await c.close();
      }
    });
  });
});
