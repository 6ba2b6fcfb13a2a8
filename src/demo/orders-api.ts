import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";

/** The demo's fixed port (connectors/orders.json points here). */
export const ORDERS_API_PORT = 8181;

type Status = "pending" | "confirmed" | "shipped" | "cancelled";
interface Line {
  sku: string;
  quantity: number;
  unitPrice: string;
}
interface Order {
  id: string;
  customerId: string;
  status: Status;
  lines: Line[];
  total: string;
  currency: "EUR";
  note: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface OrdersApiOptions {
  repoRoot: string;
  logger: Logger;
  /** Defaults to 8181; tests pass 0. */
  port?: number;
  /** Defaults to $ORDERS_API_KEY, then "demo-key" (the same default connectors/orders.json uses). */
  apiKey?: string;
}

const MAX_BODY = 64 * 1024;
const NEXT: Partial<Record<Status, Status>> = { pending: "confirmed", confirmed: "shipped" };

/**
 * A small order management system for the demo: in-memory, API-key protected, RFC 9457 problem
 * details on errors, and Idempotency-Key support on POST so a retried create is harmless.
 */
export async function start(
  opts: OrdersApiOptions,
): Promise<{ close(): Promise<void>; port: number; url: string; apiKey: string }> {
  const apiKey = opts.apiKey ?? (process.env.ORDERS_API_KEY || "demo-key");
  const spec = await readFile(join(opts.repoRoot, "demo", "orders-openapi.yaml"), "utf8");
  const orders = seed();
  const idempotent = new Map<string, string>();
  let nextId = 1000 + orders.size + 1;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.logger.warn(
        { err: err instanceof Error ? err.message : String(err) },
        "orders demo: request failed",
      );
      if (!res.headersSent) problem(res, 500, "Internal error", "the demo server failed");
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "GET" && url.pathname === "/openapi.yaml") {
      res.writeHead(200, { "content-type": "application/yaml" }).end(spec);
      return;
    }
    if (req.method === "GET" && url.pathname === "/healthz") {
      json(res, 200, { ok: true });
      return;
    }
    if (req.headers["x-api-key"] !== apiKey) {
      problem(res, 401, "Unauthorized", "missing or wrong X-API-Key header");
      return;
    }
    const match = /^\/orders(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match) {
      problem(res, 404, "Not found", `no resource at ${url.pathname}`);
      return;
    }
    const id = match[1] === undefined ? undefined : decodeURIComponent(match[1]);

    if (id === undefined && req.method === "GET") return listOrders(url, res);
    if (id === undefined && req.method === "POST") {
      const key = req.headers["idempotency-key"];
      const earlier = typeof key === "string" ? idempotent.get(key) : undefined;
      if (earlier !== undefined) {
        json(res, 201, orders.get(earlier));
        return;
      }
      const body = await readJson(req, res);
      if (body === undefined) return;
      const errors = validateNewOrder(body);
      if (errors.length > 0) {
        problem(res, 422, "Invalid order", `${errors.length} field(s) are invalid`, errors);
        return;
      }
      const input = body as { customerId: string; lines: Line[]; note?: string };
      const now = new Date().toISOString();
      const order: Order = {
        id: `ord-${nextId++}`,
        customerId: input.customerId,
        status: "pending",
        lines: input.lines.map((l) => ({ sku: l.sku, quantity: l.quantity, unitPrice: l.unitPrice })),
        total: totalOf(input.lines),
        currency: "EUR",
        note: input.note ?? null,
        createdAt: now,
        updatedAt: now,
      };
      orders.set(order.id, order);
      if (typeof key === "string") idempotent.set(key, order.id);
      json(res, 201, order);
      return;
    }
    if (id === undefined) {
      problem(res, 405, "Method not allowed", `${req.method ?? "?"} /orders is not supported`);
      return;
    }
    const order = orders.get(id);
    if (!order) {
      problem(res, 404, "Order not found", `no order with id ${JSON.stringify(id.slice(0, 40))}`);
      return;
    }
    switch (req.method) {
      case "GET":
        json(res, 200, order);
        return;
      case "PATCH":
      case "PUT": {
        const body = await readJson(req, res);
        if (body === undefined) return;
        const wanted = (body as { status?: unknown }).status;
        if (wanted !== NEXT[order.status]) {
          problem(
            res,
            409,
            "Invalid status change",
            `order ${order.id} is ${order.status}; the only allowed next status is ${NEXT[order.status] ?? "none"}`,
          );
          return;
        }
        order.status = wanted as Status;
        order.updatedAt = new Date().toISOString();
        json(res, 200, order);
        return;
      }
      case "DELETE":
        if (order.status === "shipped" || order.status === "cancelled") {
          problem(res, 409, "Cannot cancel", `order ${order.id} is already ${order.status}`);
          return;
        }
        order.status = "cancelled";
        order.updatedAt = new Date().toISOString();
        json(res, 200, order);
        return;
      default:
        problem(res, 405, "Method not allowed", `${req.method ?? "?"} is not supported on an order`);
    }
  }

  function listOrders(url: URL, res: ServerResponse): void {
    const status = url.searchParams.get("status");
    const customerId = url.searchParams.get("customerId");
    const limit = Number(url.searchParams.get("limit") ?? "20");
    const offset = Number(url.searchParams.get("offset") ?? "0");
    if (!Number.isInteger(limit) || limit < 1 || limit > 100 || !Number.isInteger(offset) || offset < 0) {
      problem(res, 400, "Invalid paging", "limit must be 1..100 and offset >= 0");
      return;
    }
    const all = [...orders.values()]
      .filter((o) => (status ? o.status === status : true))
      .filter((o) => (customerId ? o.customerId === customerId : true))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
    json(res, 200, { orders: all.slice(offset, offset + limit), total: all.length, limit, offset });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? ORDERS_API_PORT, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  opts.logger.info({ port }, "orders demo API listening");
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    apiKey,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function seed(): Map<string, Order> {
  const rows: [string, Status, Line[], string][] = [
    ["cust-1001", "shipped", [{ sku: "WIDGET-1", quantity: 2, unitPrice: "19.90" }], "2025-01-10T09:00:00Z"],
    [
      "cust-1002",
      "confirmed",
      [{ sku: "GADGET-7", quantity: 1, unitPrice: "149.00" }],
      "2025-01-11T10:30:00Z",
    ],
    [
      "cust-1001",
      "pending",
      [
        { sku: "WIDGET-1", quantity: 1, unitPrice: "19.90" },
        { sku: "CABLE-3", quantity: 3, unitPrice: "4.50" },
      ],
      "2025-01-12T14:15:00Z",
    ],
    ["cust-1003", "pending", [{ sku: "SENSOR-2", quantity: 10, unitPrice: "7.25" }], "2025-01-13T08:45:00Z"],
  ];
  const map = new Map<string, Order>();
  rows.forEach(([customerId, status, lines, at], i) => {
    const id = `ord-${1001 + i}`;
    map.set(id, {
      id,
      customerId,
      status,
      lines,
      total: totalOf(lines),
      currency: "EUR",
      note: null,
      createdAt: at,
      updatedAt: at,
    });
  });
  return map;
}

/** Cents as integers: money never goes through floating point. */
function totalOf(lines: readonly Line[]): string {
  let cents = 0n;
  for (const l of lines) {
    const [whole = "0", frac = ""] = l.unitPrice.split(".");
    const unit = BigInt(whole) * 100n + BigInt((frac + "00").slice(0, 2));
    cents += unit * BigInt(l.quantity);
  }
  const sign = cents < 0n ? "-" : "";
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

function validateNewOrder(body: unknown): { pointer: string; message: string }[] {
  const errors: { pointer: string; message: string }[] = [];
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return [{ pointer: "", message: "must be an object" }];
  }
  const b = body as Record<string, unknown>;
  if (typeof b.customerId !== "string" || !/^cust-\d{4}$/.test(b.customerId)) {
    errors.push({ pointer: "/customerId", message: "must look like cust-1234" });
  }
  if (!Array.isArray(b.lines) || b.lines.length === 0 || b.lines.length > 50) {
    errors.push({ pointer: "/lines", message: "must be an array of 1 to 50 lines" });
  } else {
    b.lines.forEach((l: unknown, i) => {
      const line = (typeof l === "object" && l !== null ? l : {}) as Record<string, unknown>;
      if (typeof line.sku !== "string" || line.sku === "" || line.sku.length > 32) {
        errors.push({ pointer: `/lines/${i}/sku`, message: "must be a non-empty string (max 32)" });
      }
      if (
        !Number.isInteger(line.quantity) ||
        (line.quantity as number) < 1 ||
        (line.quantity as number) > 1000
      ) {
        errors.push({ pointer: `/lines/${i}/quantity`, message: "must be an integer from 1 to 1000" });
      }
      if (typeof line.unitPrice !== "string" || !/^\d+(\.\d{1,2})?$/.test(line.unitPrice)) {
        errors.push({
          pointer: `/lines/${i}/unitPrice`,
          message: 'must be a decimal string such as "19.90"',
        });
      }
    });
  }
  if (b.note !== undefined && (typeof b.note !== "string" || b.note.length > 500)) {
    errors.push({ pointer: "/note", message: "must be a string of at most 500 characters" });
  }
  return errors;
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      problem(res, 413, "Body too large", `at most ${MAX_BODY} bytes`);
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    problem(res, 400, "Malformed JSON", "the request body is not valid JSON");
    return undefined;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function problem(
  res: ServerResponse,
  status: number,
  title: string,
  detail: string,
  errors?: unknown[],
): void {
  res
    .writeHead(status, { "content-type": "application/problem+json" })
    .end(JSON.stringify({ type: "about:blank", title, status, detail, ...(errors ? { errors } : {}) }));
}
