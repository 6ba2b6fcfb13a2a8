import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../../src/core/index.js";
import { connectorContract } from "../../helpers/connector-contract.js";
import { call, createSql, failure, rows, settledWithin, uniqueName, waitUntil } from "./helpers.js";

/**
 * What the shared SQL behaviour suite needs from one engine: how to reach it as a connector,
 * and an admin side-door to set up and verify data without going through the connector.
 */
export interface EngineFixture {
  readonly engine: "sqlite" | "postgres" | "mysql";
  /** The connection fields of a connector file: `{ engine, file }` or `{ engine, url }`. */
  connection(): Record<string, unknown>;
  readonly baseDir?: string;
  /** Runs SQL as the test's own admin (setup and verification), returns rows. */
  admin(sql: string): Promise<Record<string, unknown>[]>;
  createTable(table: string): string;
  /** Inserts row 1 with the big integer, the decimal and 3 bytes of binary. */
  seedFirstRow(table: string): string;
  /** `?` or `$n` for the query tool's params. */
  placeholder(n: number): string;
  /** SQL comparing the `big` column with a bound string parameter exactly. */
  bigEquals(table: string): string;
  /** Statements the query tool must refuse on this engine (besides the common ones). */
  engineWriteAttempts(table: string, scratch: string): string[];
  /** A read-only query that runs (much) longer than the test's budget. */
  readonly slowQuery: string;
  /** How many statements with exactly this text run on the server now (servers only). */
  running?(sql: string): Promise<number>;
  /** Whether declared tools are checked for truthful readOnly at load (SQLite) or at run time. */
  readonly readOnlyCheckedAtLoad: boolean;
  close(): Promise<void>;
}

const SEED_ROWS = 50;

export function sqlEngineSuite(fx: EngineFixture): void {
  const table = uniqueName("sqlt");
  const name = `t-${fx.engine}`;
  const config = (extra: Record<string, unknown> = {}) => ({
    kind: "sql",
    name,
    ...fx.connection(),
    tools: [
      {
        name: "get_item",
        description: "One item by id",
        statement: `SELECT id, name, big, amount, payload FROM ${table} WHERE id = :id`,
        parameters: { id: { type: "integer", minimum: 1 } },
        required: ["id"],
        readOnly: true,
      },
      {
        name: "find_by_name",
        description: "Items by exact name",
        statement: `SELECT id, name FROM ${table} WHERE name = :name -- a comment with :not_a_param`,
        parameters: { name: { type: "string" } },
        required: ["name"],
        readOnly: true,
      },
      {
        name: "list_items",
        description: "All items, capped",
        statement: `SELECT id, name FROM ${table} ORDER BY id`,
        readOnly: true,
        maxRows: 10,
      },
      {
        name: "add_item",
        description: "Add an item",
        statement: `INSERT INTO ${table} (id, name) VALUES (:id, :name)`,
        parameters: { id: { type: "integer" }, name: { type: "string" } },
        required: ["id", "name"],
        readOnly: false,
        destructive: false,
      },
      {
        name: "rename_item",
        description: "Rename an item",
        statement: `UPDATE ${table} SET name = :name WHERE id = :id`,
        parameters: { id: { type: "integer" }, name: { type: "string" } },
        required: ["id", "name"],
        readOnly: false,
        idempotent: true,
      },
      ...(fx.readOnlyCheckedAtLoad
        ? []
        : [
            {
              name: "lying_read",
              description: "Declared read-only, but deletes: the engine must refuse it",
              statement: `DELETE FROM ${table} WHERE id = :id`,
              parameters: { id: { type: "integer" } },
              required: ["id"],
              readOnly: true,
            },
          ]),
    ],
    query: { enabled: true },
    ...extra,
  });
  const count = async () => Number((await fx.admin(`SELECT COUNT(*) AS n FROM ${table}`))[0]!.n);

  describe(`sql connector on ${fx.engine}`, () => {
    beforeAll(async () => {
      await fx.admin(fx.createTable(table));
      await fx.admin(fx.seedFirstRow(table));
      const values = Array.from({ length: SEED_ROWS - 1 }, (_, i) => `(${i + 2}, 'item-${i + 2}')`).join(
        ", ",
      );
      await fx.admin(`INSERT INTO ${table} (id, name) VALUES ${values}`);
    });
    afterAll(async () => {
      await fx.admin(`DROP TABLE IF EXISTS ${table}`);
      await fx.close();
    });

    connectorContract(
      "sql",
      async () => ({
        connector: await createSql(config(), fx.baseDir),
        okCall: { tool: `${name}__get_item`, arguments: { id: 1 } },
      }),
      async () => {},
    );

    describe("behaviour", () => {
      let c: Connector;
      beforeAll(async () => {
        c = await createSql(config(), fx.baseDir);
      });
      afterAll(async () => {
        await c.close();
      });

      it("sets truthful annotations and records engine + statement as upstream", () => {
        const byOp = new Map(c.tools().map((t) => [t.operation, t]));
        expect(byOp.get("get_item")!.annotations).toEqual({
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        });
        expect(byOp.get("add_item")!.annotations).toMatchObject({
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: false,
        });
        expect(byOp.get("rename_item")!.annotations).toMatchObject({
          readOnlyHint: false,
          destructiveHint: true,
          idempotentHint: true,
        });
        expect(byOp.get("query")!.annotations.readOnlyHint).toBe(true);
        expect(byOp.get("get_item")!.upstream).toBe(
          `${fx.engine}: SELECT id, name, big, amount, payload FROM ${table} WHERE id = :id`,
        );
        expect(byOp.get("get_item")!.inputSchema).toMatchObject({
          type: "object",
          properties: { id: { type: "integer", minimum: 1 } },
          required: ["id"],
        });
      });

      it("keeps big integers and decimals exact and marks binary as base64", async () => {
        const r = await rows(c, "get_item", { id: 1 });
        expect(r.rowCount).toBe(1);
        const row = r.rows[0]!;
        expect(row.big).toBe("9007199254740993");
        expect(row.amount).toBe("12345678901234567.89");
        expect(row.payload).toEqual({ $base64: Buffer.from([0x00, 0xff, 0x10]).toString("base64") });
        const bound = await rows(c, "query", { sql: fx.bigEquals(table), params: ["9007199254740993"] });
        expect(bound.rows.map((x) => String(x.id))).toEqual(["1"]);
      });

      it("binds injection attempts as plain values", async () => {
        const before = await count();
        expect((await rows(c, "find_by_name", { name: "' OR 1=1 --" })).rowCount).toBe(0);
        expect((await rows(c, "find_by_name", { name: `1; DROP TABLE ${table}` })).rowCount).toBe(0);
        expect((await rows(c, "find_by_name", { name: "item-3" })).rows.map((x) => String(x.id))).toEqual([
          "3",
        ]);
        const typed = await failure(call(c, "get_item", { id: `1; DROP TABLE ${table}` }));
        expect(typed.code).toBe("INVALID_ARGUMENTS");
        const q = await rows(c, "query", {
          sql: `SELECT id FROM ${table} WHERE name = ${fx.placeholder(1)}`,
          params: ["' OR 1=1 --"],
        });
        expect(q.rowCount).toBe(0);
        const evil = "x'); DELETE FROM " + table + "; --";
        const written = await call(c, "add_item", { id: 900, name: evil });
        expect(written.structuredContent).toMatchObject({ rowsAffected: 1 });
        expect((await fx.admin(`SELECT name FROM ${table} WHERE id = 900`))[0]!.name).toBe(evil);
        expect(await count()).toBe(before + 1);
        await fx.admin(`DELETE FROM ${table} WHERE id = 900`);
        expect(await count()).toBe(before);
      });

      it("refuses every write through the read-only query tool and leaves the data unchanged", async () => {
        const scratch = uniqueName("scratch");
        const before = await count();
        const attempts = [
          `DELETE FROM ${table}`,
          `UPDATE ${table} SET name = 'pwned'`,
          `INSERT INTO ${table} (id, name) VALUES (999, 'pwned')`,
          `CREATE TABLE ${scratch} (a INTEGER)`,
          `DROP TABLE ${table}`,
          `COMMIT; DELETE FROM ${table}`,
          `SELECT 1; DELETE FROM ${table}`,
          `SELECT 1 /* ; */ ; DELETE FROM ${table}`,
          `SET autocommit = 1`,
          ...fx.engineWriteAttempts(table, scratch),
        ];
        for (const sql of attempts) {
          const err = await failure(call(c, "query", { sql }));
          expect(err.code, sql).toBe("INVALID_ARGUMENTS");
          expect(err.message, sql).toContain(`connector "${name}"`);
        }
        expect(await count()).toBe(before);
        expect((await fx.admin(`SELECT name FROM ${table} WHERE id = 1`))[0]!.name).toBe("item-1");
        await expect(fx.admin(`SELECT * FROM ${scratch}`)).rejects.toThrow();
      });

      it("reports a syntax error or unknown table in a free-form query as the request's fault", async () => {
        for (const sql of ["SELECT FROM WHERE", `SELECT * FROM ${table}_missing`]) {
          const err = await failure(call(c, "query", { sql }));
          expect(err.code, sql).toBe("INVALID_ARGUMENTS");
        }
        const tooFew = await failure(
          call(c, "query", {
            sql: `SELECT id FROM ${table} WHERE id = ${fx.placeholder(1)} AND name = ${fx.placeholder(2)}`,
            params: [1],
          }),
        );
        expect(tooFew.code).toBe("INVALID_ARGUMENTS");
        // The connection is still good afterwards.
        expect((await rows(c, "get_item", { id: 7 })).rowCount).toBe(1);
      });

      it("caps rows and bytes, reporting truncated", async () => {
        const capped = await rows(c, "list_items");
        expect(capped.rowCount).toBe(10);
        expect(capped.truncated).toBe(true);
        const all = await rows(c, "query", { sql: `SELECT id, name FROM ${table} ORDER BY id` });
        expect(all.rowCount).toBe(SEED_ROWS);
        expect(all.truncated).toBe(false);

        const small = await createSql(
          config({ name: `${name}-b`, maxResultBytes: 400, query: { enabled: true, maxRows: 1000 } }),
          fx.baseDir,
        );
        try {
          const r = await rows(small, "query", { sql: `SELECT id, name FROM ${table} ORDER BY id` });
          expect(r.truncated).toBe(true);
          expect(r.rowCount).toBeGreaterThan(0);
          expect(r.rowCount).toBeLessThan(SEED_ROWS);
          expect(Buffer.byteLength(JSON.stringify(r.rows))).toBeLessThanOrEqual(400);
        } finally {
          await small.close();
        }
      });

      it("returns rowsAffected for writes and maps constraint violations without other rows' values", async () => {
        const renamed = await call(c, "rename_item", { id: 50, name: "item-50-renamed" });
        expect(renamed.structuredContent).toMatchObject({ rowsAffected: 1 });
        await fx.admin(`UPDATE ${table} SET name = 'item-50' WHERE id = 50`);
        const dup = await failure(call(c, "rename_item", { id: 50, name: "item-2" }));
        expect(dup.code).toBe("UPSTREAM_ERROR");
        expect(dup.message).toContain(`connector "${name}" (sql, ${fx.engine}) tool "rename_item"`);
        expect(dup.message).not.toContain("item-2");
        expect((await fx.admin(`SELECT name FROM ${table} WHERE id = 50`))[0]!.name).toBe("item-50");
      });

      if (!fx.readOnlyCheckedAtLoad) {
        it("runs a declared read-only tool read-only, so a mislabelled write is refused", async () => {
          const before = await count();
          const err = await failure(call(c, "lying_read", { id: 2 }));
          expect(err.code).toBe("UPSTREAM_ERROR");
          expect(await count()).toBe(before);
        });
      }

      it("stops a slow query at its deadline while other calls complete", async () => {
        const other = await createSql(config({ name: `${name}-o` }), fx.baseDir);
        try {
          await rows(other, "get_item", { id: 2 }); // warm
          const slow = call(c, "query", { sql: fx.slowQuery }, { timeoutMs: 1_500 });
          slow.catch(() => {});
          await new Promise((r) => setTimeout(r, 200));
          if (fx.running)
            await waitUntil(async () => (await fx.running!(fx.slowQuery)) > 0, "the slow query runs");
          // Another session on the same connector, and another connector, both answer meanwhile.
          expect((await rows(c, "get_item", { id: 3 })).rowCount).toBe(1);
          expect((await rows(other, "get_item", { id: 4 })).rowCount).toBe(1);
          expect(await settledWithin(slow, 0)).toBe(false);
          const err = await failure(slow);
          expect(err.code).toBe("UPSTREAM_TIMEOUT");
          expect(err.message).toContain("1500 ms");
          if (fx.running)
            await waitUntil(async () => (await fx.running!(fx.slowQuery)) === 0, "the slow query stopped");
          // The connector is whole afterwards.
          expect((await rows(c, "get_item", { id: 5 })).rowCount).toBe(1);
        } finally {
          await other.close();
        }
      });

      it("stops a running statement when the caller's signal aborts", async () => {
        const ac = new AbortController();
        const slow = call(c, "query", { sql: fx.slowQuery }, { signal: ac.signal, timeoutMs: 60_000 });
        slow.catch(() => {});
        setTimeout(() => ac.abort(new Error("client went away")), 300);
        if (fx.running)
          await waitUntil(async () => (await fx.running!(fx.slowQuery)) > 0, "the slow query runs");
        const err = await failure(slow);
        expect(err.code).toBe("UPSTREAM_TIMEOUT");
        expect(err.message).toContain("cancelled");
        if (fx.running)
          await waitUntil(async () => (await fx.running!(fx.slowQuery)) === 0, "the slow query stopped");
        expect((await rows(c, "get_item", { id: 6 })).rowCount).toBe(1);
      });

      it("applies parameter defaults and refuses unknown or mistyped arguments", async () => {
        const unknown = await failure(call(c, "get_item", { id: 1, extra: true }));
        expect(unknown.code).toBe("INVALID_ARGUMENTS");
        const missing = await failure(call(c, "get_item", {}));
        expect(missing.code).toBe("INVALID_ARGUMENTS");
        expect(missing.message).toContain('"id"');
      });
    });
  });
}
