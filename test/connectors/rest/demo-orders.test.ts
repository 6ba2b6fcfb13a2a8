import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadJsonFile } from "../../../src/config/load-file.js";
import { restFactory, type RestConnector } from "../../../src/connectors/rest/index.js";
import { start } from "../../../src/demo/orders-api.js";
import { testLogger } from "../../helpers/logger.js";
import { call, failure } from "./helpers.js";

const repoRoot = resolve(import.meta.dirname, "../../..");

describe("demo: the orders API behind connectors/orders.json", () => {
  let demo: Awaited<ReturnType<typeof start>>;
  let connector: RestConnector;

  beforeAll(async () => {
    demo = await start({ repoRoot, logger: testLogger, port: 0, apiKey: "test-orders-key" });
    const { value } = loadJsonFile(join(repoRoot, "connectors", "orders.json"), restFactory.configSchema, {
      ORDERS_API_KEY: "test-orders-key",
    });
    // The committed file points at the fixed demo port; the test server runs on port 0.
    connector = await restFactory.create(
      { ...value, baseUrl: demo.url },
      { baseDir: join(repoRoot, "connectors"), logger: testLogger },
    );
  });
  afterAll(async () => {
    await connector.close();
    await demo.close();
  });

  it("the connector file parses with the default key and points at the demo port", () => {
    const { value } = loadJsonFile(join(repoRoot, "connectors", "orders.json"), restFactory.configSchema, {});
    expect(value.baseUrl).toBe("http://127.0.0.1:8181");
    expect(value.auth).toEqual({ type: "apiKey", in: "header", name: "X-API-Key", value: "demo-key" });
  });

  it("offers the five order operations as tools", () => {
    expect(
      connector
        .tools()
        .map((t) => t.name)
        .sort(),
    ).toEqual([
      "orders__cancelOrder",
      "orders__createOrder",
      "orders__getOrder",
      "orders__listOrders",
      "orders__updateOrderStatus",
    ]);
  });

  it("serves its own spec at /openapi.yaml", async () => {
    const res = await fetch(`${demo.url}/openapi.yaml`);
    expect(await res.text()).toBe(readFileSync(join(repoRoot, "demo", "orders-openapi.yaml"), "utf8"));
  });

  it("lists with query filters", async () => {
    const result = await call(connector, "orders__listOrders", {
      status: "pending",
      customerId: "cust-1001",
    });
    const page = result.structuredContent as { orders: { id: string; status: string }[]; total: number };
    expect(page.total).toBe(1);
    expect(page.orders[0]).toMatchObject({ id: "ord-1003", status: "pending", total: "33.40" });
  });

  it("creates (once per Idempotency-Key), moves and cancels an order", async () => {
    const body = { customerId: "cust-1002", lines: [{ sku: "CABLE-3", quantity: 4, unitPrice: "4.50" }] };
    const created = (await call(connector, "orders__createOrder", { body }, { callId: "demo-call-1" }))
      .structuredContent as { id: string; total: string; status: string };
    expect(created).toMatchObject({ status: "pending", total: "18.00" });
    const again = (await call(connector, "orders__createOrder", { body }, { callId: "demo-call-1" }))
      .structuredContent as { id: string };
    expect(again.id).toBe(created.id);

    const confirmed = await call(connector, "orders__updateOrderStatus", {
      orderId: created.id,
      body: { status: "confirmed" },
    });
    expect(confirmed.structuredContent).toMatchObject({ id: created.id, status: "confirmed" });
    const fetched = await call(connector, "orders__getOrder", { orderId: created.id });
    expect(fetched.structuredContent).toMatchObject({ status: "confirmed" });
    const cancelled = await call(connector, "orders__cancelOrder", { orderId: created.id });
    expect(cancelled.structuredContent).toMatchObject({ status: "cancelled" });
  });

  it("reports the API's validation problems and status conflicts so an agent can fix its call", async () => {
    const invalid = await failure(
      call(connector, "orders__createOrder", {
        body: { customerId: "cust-1001", lines: [{ sku: "X", quantity: 0, unitPrice: "1" }] },
      }),
    );
    expect(invalid.code).toBe("UPSTREAM_ERROR");
    expect(invalid.message).toContain("HTTP 422");
    expect(invalid.message).toContain("/lines/0/quantity");
    const conflict = await failure(
      call(connector, "orders__updateOrderStatus", { orderId: "ord-1001", body: { status: "shipped" } }),
    );
    expect(conflict.message).toContain("HTTP 409");
    expect(conflict.message).toContain("order ord-1001 is shipped");
    const missing = await failure(call(connector, "orders__getOrder", { orderId: "ord-9999" }));
    expect(missing.message).toContain("HTTP 404");
  });

  it("refuses a wrong API key (and the connector's health check passes)", async () => {
    const res = await fetch(`${demo.url}/orders`, { headers: { "x-api-key": "wrong" } });
    expect(res.status).toBe(401);
    expect((await connector.health()).ok).toBe(true);
  });
});
