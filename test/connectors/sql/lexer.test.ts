import { describe, expect, it } from "vitest";
import { StatementError, translateNamed } from "../../../src/connectors/sql/named-params.js";
import { assertReadOnlyQuery, QueryRefused } from "../../../src/connectors/sql/query-guard.js";
import { RowCollector, toJsonValue } from "../../../src/connectors/sql/values.js";

describe("named parameter translation", () => {
  it("numbers parameters per engine and reuses a PostgreSQL number for a repeated name", () => {
    const sql = "SELECT * FROM t WHERE a = :a AND b = :b OR a2 = :a";
    expect(translateNamed(sql, "postgres")).toMatchObject({
      text: "SELECT * FROM t WHERE a = $1 AND b = $2 OR a2 = $1",
      order: ["a", "b"],
    });
    expect(translateNamed(sql, "mysql")).toMatchObject({
      text: "SELECT * FROM t WHERE a = ? AND b = ? OR a2 = ?",
      order: ["a", "b", "a"],
    });
    expect(translateNamed(sql, "sqlite").order).toEqual(["a", "b", "a"]);
  });

  it("ignores :name inside literals, quoted identifiers and comments, and keeps ::casts", () => {
    const pgSql = [
      "SELECT ':x' AS s, \"col:y\", $$ :z $$, $tag$ :w ; $tag$, E'it\\'s :v',",
      "  :real::int, x::text -- :c1",
      "  /* :c2 /* nested :c3 */ still comment :c4 */ FROM t WHERE id = :id",
    ].join("\n");
    const t = translateNamed(pgSql, "postgres");
    expect([...t.used]).toEqual(["real", "id"]);
    expect(t.text).toContain("$1::int");
    expect(t.text).toContain("x::text");
    expect(t.text).toContain("':x'");

    const mySql = "SELECT 'a\\':b', \"q:c\", `i:d` # :e\n FROM t WHERE x = :x -- :f";
    expect([...translateNamed(mySql, "mysql").used]).toEqual(["x"]);
    const liteSql = "SELECT '::a', [b:c], `d:e` FROM t WHERE x = :x /* :y */";
    expect([...translateNamed(liteSql, "sqlite").used]).toEqual(["x"]);
  });

  it("refuses hand-written positional placeholders and unterminated literals", () => {
    expect(() => translateNamed("SELECT * FROM t WHERE a = ?", "sqlite")).toThrow(StatementError);
    expect(() => translateNamed("SELECT * FROM t WHERE a = ?", "mysql")).toThrow(/positional placeholder/);
    expect(() => translateNamed("SELECT * FROM t WHERE a = $1", "postgres")).toThrow(
      /positional placeholder \$1/,
    );
    expect(() => translateNamed("SELECT * FROM t WHERE a = @a", "sqlite")).toThrow(StatementError);
    expect(() => translateNamed("SELECT 'open", "postgres")).toThrow(/unterminated string literal/);
    expect(() => translateNamed("SELECT 1 /* open", "mysql")).toThrow(/unterminated block comment/);
    // A PostgreSQL JSON operator is not a placeholder.
    expect(translateNamed("SELECT doc ? 'k' FROM t WHERE id = :id", "postgres").text).toBe(
      "SELECT doc ? 'k' FROM t WHERE id = $1",
    );
  });
});

describe("read-only query guard", () => {
  const refused = (sql: string, dialect: "sqlite" | "postgres" | "mysql") =>
    expect(() => assertReadOnlyQuery(sql, dialect), sql).toThrow(QueryRefused);

  it("accepts plain reads, including semicolons inside literals and a trailing semicolon", () => {
    for (const d of ["sqlite", "postgres", "mysql"] as const) {
      assertReadOnlyQuery("SELECT ';' AS s FROM t;", d);
      assertReadOnlyQuery("  -- why\n with x as (select 1) select * from x", d);
      assertReadOnlyQuery("SELECT 1 /* ; DELETE */", d);
    }
    assertReadOnlyQuery("SELECT $$;$$", "postgres");
    assertReadOnlyQuery("SHOW TABLES", "mysql");
  });

  it("refuses writes, second statements, denied keywords and executable comments", () => {
    for (const d of ["sqlite", "postgres", "mysql"] as const) {
      refused("", d);
      refused("  ; ", d);
      refused("DELETE FROM t", d);
      refused("SELECT 1; DELETE FROM t", d);
      refused("COMMIT; DELETE FROM t", d);
      refused("UPDATE t SET a = 1", d);
      refused("SET x = 1", d);
    }
    refused("SELECT 1; PRAGMA writable_schema=1", "sqlite");
    refused("ATTACH 'x' AS y", "sqlite");
    refused("SELECT \"load_extension\"('x')", "sqlite");
    refused("SELECT * INTO t2 FROM t", "postgres");
    refused('SELECT pg_catalog."pg_terminate_backend"(1)', "postgres");
    refused("SELECT * FROM t INTO OUTFILE '/tmp/x'", "mysql");
    refused("/*! DELETE FROM t */ SELECT 1", "mysql");
    refused("SELECT 1 /*M!100000 ; DELETE FROM t */", "mysql");
    refused("SELECT 'unterminated", "postgres");
  });
});

describe("result values", () => {
  it("keeps integers beyond 2^53 as decimal strings and renders dates and bytes", () => {
    expect(toJsonValue(9007199254740993n)).toBe("9007199254740993");
    expect(toJsonValue(-9007199254740993n)).toBe("-9007199254740993");
    expect(toJsonValue(42n)).toBe(42);
    expect(toJsonValue(new Date("2024-01-02T03:04:05.006Z"))).toBe("2024-01-02T03:04:05.006Z");
    expect(toJsonValue(Buffer.from("hi"))).toEqual({ $base64: "aGk=" });
    expect(toJsonValue(Number.POSITIVE_INFINITY)).toBe("Infinity");
    expect(toJsonValue({ a: [1n, null] })).toEqual({ a: [1, null] });
    const collector = new RowCollector(10, 1_000);
    collector.add(JSON.parse('{"__proto__": "column named __proto__"}') as Record<string, unknown>);
    expect(JSON.stringify(collector.rows)).toBe('[{"__proto__":"column named __proto__"}]');
  });

  it("stops adding rows at the row cap or before the byte cap, marking truncated", () => {
    const byRows = new RowCollector(2, 1_000_000);
    expect([byRows.add({ a: 1 }), byRows.add({ a: 2 }), byRows.add({ a: 3 })]).toEqual([true, true, false]);
    expect(byRows.truncated).toBe(true);

    const byBytes = new RowCollector(1_000, 40);
    let added = 0;
    while (byBytes.add({ name: "0123456789" })) added++;
    expect(byBytes.truncated).toBe(true);
    expect(added).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(byBytes.rows))).toBeLessThanOrEqual(40);

    const exact = new RowCollector(10, 1_000);
    exact.add({ a: 1 });
    expect(exact.truncated).toBe(false);
  });
});
