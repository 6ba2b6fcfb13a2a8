import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../../src/core/index.js";
import { ensureCustomersDb, start } from "../../../src/demo/customers.js";
import { testLogger } from "../../helpers/logger.js";
import { call, createSql, failure, rows } from "./helpers.js";

const repo = process.cwd();
const root = mkdtempSync(join(tmpdir(), "portcullis-demo-"));
mkdirSync(join(root, "demo"));
mkdirSync(join(root, "connectors"));
copyFileSync(join(repo, "demo", "customers.sql"), join(root, "demo", "customers.sql"));
const dbFile = join(root, "demo", "data", "customers.db");

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("demo customers database", () => {
  it("is created from the SQL when missing, kept when fresh, rebuilt when the SQL is newer", async () => {
    const backend = await start({ repoRoot: root, logger: testLogger });
    await backend.close();
    const built = statSync(dbFile).mtimeMs;
    expect(ensureCustomersDb(root, testLogger)).toBe(false);
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(root, "demo", "customers.sql"), future, future);
    expect(ensureCustomersDb(root, testLogger)).toBe(true);
    expect(statSync(dbFile).mtimeMs).toBeGreaterThanOrEqual(built);
    // Built in a temporary file and renamed: nothing half-written is left behind.
    expect(readdirSync(join(root, "demo", "data")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

describe("connectors/customers.json", () => {
  let c: Connector;
  beforeAll(async () => {
    ensureCustomersDb(root, testLogger);
    const raw: unknown = JSON.parse(readFileSync(join(repo, "connectors", "customers.json"), "utf8"));
    c = await createSql(raw, join(root, "connectors"));
  });
  afterAll(async () => {
    await c.close();
  });

  it("offers the declared tools plus the query tool, with truthful annotations", () => {
    expect(c.tools().map((t) => t.name)).toEqual([
      "customers__find_customer",
      "customers__search_customers",
      "customers__list_orders_for_customer",
      "customers__get_order",
      "customers__orders_summary_by_status",
      "customers__update_order_status",
      "customers__query",
    ]);
    const update = c.tools().find((t) => t.operation === "update_order_status")!;
    expect(update.annotations).toMatchObject({
      readOnlyHint: false,
      idempotentHint: true,
      destructiveHint: true,
    });
  });

  it("holds 20 customers and 60 orders", async () => {
    const counts = await rows(c, "query", {
      sql: "SELECT (SELECT COUNT(*) FROM customers) AS customers, (SELECT COUNT(*) FROM orders) AS orders",
    });
    expect(counts.rows).toEqual([{ customers: 20, orders: 60 }]);
  });

  it("finds and searches customers, treating % and _ in the prefix literally", async () => {
    expect((await rows(c, "find_customer", { id: 12 })).rows[0]).toMatchObject({ name: "Liam O'Connor" });
    expect((await rows(c, "find_customer", { id: 999 })).rowCount).toBe(0);
    const found = await rows(c, "search_customers", { prefix: "am" });
    expect(found.rows.map((r) => r.name)).toEqual(["Amelia Hart"]);
    expect((await rows(c, "search_customers", { prefix: "%" })).rowCount).toBe(0);
    expect((await rows(c, "search_customers", { prefix: "_" })).rowCount).toBe(0);
    // Matches on the email when the name does not.
    expect(
      (await rows(c, "search_customers", { prefix: "B.KEL", limit: 5 })).rows.map((r) => r.name),
    ).toEqual(["Bruno Keller"]);
  });

  it("returns an order's lines and its total as an exact decimal string", async () => {
    const order = await rows(c, "get_order", { order_id: 1002 });
    expect(order.rowCount).toBeGreaterThan(0);
    const cents = order.rows.reduce(
      (sum, r) => sum + Number(r.quantity) * Math.round(Number(r.unit_price) * 100),
      0,
    );
    const total = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
    for (const line of order.rows) {
      expect(line.order_total).toBe(total);
      expect(line.order_id).toBe(1002);
    }
    const list = await rows(c, "list_orders_for_customer", { customer_id: order.rows[0]!.customer_id });
    expect(list.rows.find((r) => r.id === 1002)!.total).toBe(total);
    const summary = await rows(c, "orders_summary_by_status");
    expect(summary.rows.reduce((n, r) => n + Number(r.orders), 0)).toBe(60);
    for (const r of summary.rows) expect(r.revenue).toMatch(/^\d+\.\d{2}$/);
  });

  it("updates an order's status idempotently and refuses a status outside the enum", async () => {
    const first = await call(c, "update_order_status", { order_id: 1060, status: "cancelled" });
    expect(first.structuredContent).toEqual({ rowsAffected: 1 });
    const again = await call(c, "update_order_status", { order_id: 1060, status: "cancelled" });
    expect(again.structuredContent).toEqual({ rowsAffected: 0 });
    const bad = await failure(call(c, "update_order_status", { order_id: 1060, status: "lost" }));
    expect(bad.code).toBe("INVALID_ARGUMENTS");
    const status = await rows(c, "query", { sql: "SELECT status FROM orders WHERE id = ?", params: [1060] });
    expect(status.rows).toEqual([{ status: "cancelled" }]);
  });
});
