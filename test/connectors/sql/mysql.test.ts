import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MysqlEngine } from "../../../src/connectors/sql/mysql-engine.js";
import { serviceUrl } from "../../helpers/services.js";
import { testLogger } from "../../helpers/logger.js";
import { sqlEngineSuite } from "./engine-suite.js";
import { call, closedPort, createSql, failure, rows, TcpRelay, uniqueName, waitUntil } from "./helpers.js";

const url = serviceUrl("mysql");

describe.skipIf(!url)("mysql / mariadb", () => {
  const admin = mysql.createPool({ uri: url!, connectionLimit: 2, multipleStatements: false });
  const q = async (sql: string, values: unknown[] = []) =>
    (await admin.query(sql, values))[0] as unknown as Record<string, unknown>[];
  const running = async (marker: string) =>
    Number(
      (
        await q(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = ? AND COMMAND = 'Execute' OR (INFO = ? AND COMMAND = 'Query')",
          [marker, marker],
        )
      )[0]!.n,
    );

  afterAll(async () => {
    await admin.end();
  });

  sqlEngineSuite({
    engine: "mysql",
    connection: () => ({ engine: "mysql", url: url!, pool: { max: 4 } }),
    admin: async (sql) => {
      const result = await q(sql);
      return Array.isArray(result) ? result : [];
    },
    createTable: (t) =>
      `CREATE TABLE ${t} (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE, big BIGINT, amount DECIMAL(20,2), payload VARBINARY(16)) ENGINE=InnoDB`,
    seedFirstRow: (t) =>
      `INSERT INTO ${t} (id, name, big, amount, payload) VALUES (1, 'item-1', 9007199254740993, 12345678901234567.89, X'00ff10')`,
    placeholder: () => "?",
    // A string compared with a BIGINT is compared as a double in MySQL: cast for exactness.
    bigEquals: (t) => `SELECT id FROM ${t} WHERE big = CAST(? AS SIGNED)`,
    engineWriteAttempts: (t, scratch) => [
      `SELECT * FROM ${t} INTO OUTFILE '/tmp/${scratch}.txt'`,
      `SELECT * INTO DUMPFILE '/tmp/${scratch}.bin' FROM ${t} LIMIT 1`,
      `SELECT name INTO @stolen FROM ${t} LIMIT 1`,
      "SET @a = 1",
      "SET SESSION max_statement_time = 0",
      "SELECT LOAD_FILE('/etc/passwd')",
      "SELECT GET_LOCK('portcullis', 10)",
      `/*! DELETE FROM ${t} */ SELECT 1`,
      `SELECT 1 /*!; DELETE FROM ${t} */`,
      `WITH x AS (SELECT 1) DELETE FROM ${t}`,
      `REPLACE INTO ${t} (id, name) VALUES (1, 'pwned')`,
      `LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE ${t}`,
      `HANDLER ${t} OPEN`,
      `CALL sys.ps_truncate_all_tables(false)`,
      `SELECT 1 # ; \n; DELETE FROM ${t}`,
    ],
    slowQuery: "SELECT SLEEP(30) AS slept",
    running,
    readOnlyCheckedAtLoad: false,
    async close() {},
  });

  describe("mysql specifics", () => {
    const table = uniqueName("myx");
    beforeAll(async () => {
      await q(`CREATE TABLE ${table} (id INT PRIMARY KEY, at DATETIME(3), day DATE, j JSON)`);
      await q(`INSERT INTO ${table} VALUES (1, '2024-03-01 10:20:30.123', '2024-03-01', '{"a":[1,2]}')`);
    });
    afterAll(async () => {
      await q(`DROP TABLE IF EXISTS ${table}`);
    });

    it("renders DATETIME as ISO-8601 and DATE unshifted", async () => {
      const c = await createSql({
        kind: "sql",
        name: "mydates",
        engine: "mysql",
        url,
        query: { enabled: true },
      });
      try {
        const r = await rows(c, "query", { sql: `SELECT at, day FROM ${table}` });
        expect(r.rows[0]).toEqual({ at: "2024-03-01T10:20:30.123", day: "2024-03-01" });
        expect(r.columns).toEqual([
          { name: "at", type: "datetime" },
          { name: "day", type: "date" },
        ]);
      } finally {
        await c.close();
      }
    });

    it("refuses writes and a second statement at the server even without the lexical guard", async () => {
      const engine = new MysqlEngine(
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
          `DELETE FROM ${table}`,
          `SELECT 1; DELETE FROM ${table}`,
          `COMMIT; DELETE FROM ${table}`,
        ]) {
          await expect(
            engine.execute({ ...base, sql, signal: new AbortController().signal }),
            sql,
          ).rejects.toMatchObject({
            name: "SqlFailure",
          });
        }
        expect(Number((await q(`SELECT COUNT(*) AS n FROM ${table}`))[0]!.n)).toBe(1);
      } finally {
        await engine.close();
      }
    });

    it("reports a closed port as UPSTREAM_UNAVAILABLE without the credentials", async () => {
      const port = await closedPort();
      const c = await createSql({
        kind: "sql",
        name: "mydown",
        engine: "mariadb",
        url: `mysql://portcullis:S3cretPassw0rd@127.0.0.1:${port}/test`,
        pool: { connectTimeoutMs: 1_000 },
        query: { enabled: true },
      });
      try {
        const err = await failure(call(c, "query", { sql: "SELECT 1" }));
        expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
        expect(err.message).toContain('connector "mydown" (sql, mariadb)');
        expect(err.message).toContain("database unreachable");
        expect(err.message).not.toContain("S3cretPassw0rd");
        expect((await c.health()).ok).toBe(false);
      } finally {
        await c.close();
      }
    });

    it("recovers, with the same connector instance, when the database comes back", async () => {
      const target = new URL(url!);
      const relay = new TcpRelay(target.hostname, Number(target.port || 3306));
      const port = await relay.start();
      const via = new URL(url!);
      via.port = String(port);
      const c = await createSql({
        kind: "sql",
        name: "myflaky",
        engine: "mysql",
        url: via.toString(),
        pool: { max: 2, connectTimeoutMs: 1_000 },
        query: { enabled: true },
      });
      try {
        expect((await rows(c, "query", { sql: "SELECT 1 AS one" })).rows).toEqual([{ one: 1 }]);
        await relay.stop();
        const err = await failure(call(c, "query", { sql: "SELECT 1 AS one" }));
        expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
        await relay.start(port);
        expect((await rows(c, "query", { sql: "SELECT 1 AS one" })).rows).toEqual([{ one: 1 }]);
        expect((await c.health()).ok).toBe(true);
      } finally {
        await c.close();
        await relay.stop();
      }
    });

    it("survives its pooled connection being killed with KILL", async () => {
      const c = await createSql({
        kind: "sql",
        name: "mykill",
        engine: "mysql",
        url,
        pool: { max: 1 },
        query: { enabled: true },
      });
      try {
        const id = (await rows(c, "query", { sql: "SELECT CONNECTION_ID() AS id" })).rows[0]!.id;
        await q(`KILL ${Number(id)}`);
        const again = await rows(c, "query", { sql: "SELECT CONNECTION_ID() AS id" });
        expect(again.rows[0]!.id).not.toBe(id);
      } finally {
        await c.close();
      }
    });

    it("stops a slow declared statement with KILL QUERY", async () => {
      const c = await createSql({
        kind: "sql",
        name: "myslow",
        engine: "mysql",
        url,
        tools: [
          {
            name: "nap",
            description: "sleeps",
            statement: "SELECT SLEEP(:seconds) AS napped",
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
          async () => (await running("SELECT SLEEP(?) AS napped")) === 0,
          "the declared slow statement stopped",
        );
        expect((await rows(c, "nap", { seconds: 0 })).rowCount).toBe(1);
      } finally {
        await c.close();
      }
    });
  });
});
