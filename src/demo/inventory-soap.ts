import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import soap from "soap";

/** The demo's fixed port (connectors/inventory.json points here). */
export const INVENTORY_SOAP_PORT = 8182;
const PATH = "/inventory";
const DIGEST_TYPE = "#PasswordDigest";
/** How far a UsernameToken's Created may be from now, in milliseconds. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface InventorySoapOptions {
  wsdlPath: string;
  username: string;
  password: string;
  logger: Logger;
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  if (value && typeof value === "object" && "$value" in value)
    return String((value as { $value: unknown }).$value);
  return "";
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Verifies a WS-Security UsernameToken as soap's server parses it: PasswordText compared in
 * constant time, PasswordDigest recomputed from nonce and Created, with a freshness window, a
 * nonce replay check and the Timestamp's expiry.
 */
export function checkUsernameToken(
  security: unknown,
  expected: { username: string; password: string },
  seenNonces: Set<string>,
  now = Date.now(),
): boolean {
  const sec = (security ?? {}) as Record<string, unknown>;
  const token = (sec.UsernameToken ?? {}) as Record<string, unknown>;
  if (!same(text(token.Username), expected.username)) return false;
  const expires = text((sec.Timestamp as Record<string, unknown> | undefined)?.Expires);
  if (expires && !(Date.parse(expires) > now)) return false;
  const password = token.Password as { attributes?: { Type?: string } } | string | undefined;
  const type = typeof password === "object" ? (password.attributes?.Type ?? "") : "";
  if (!type.endsWith(DIGEST_TYPE)) return same(text(password), expected.password);
  const nonce = text(token.Nonce);
  const created = text(token.Created);
  const createdAt = Date.parse(created);
  if (!nonce || !Number.isFinite(createdAt) || Math.abs(now - createdAt) > MAX_CLOCK_SKEW_MS) return false;
  if (seenNonces.has(nonce)) return false;
  if (!same(text(password), soap.passwordDigest(nonce, created, expected.password))) return false;
  seenNonces.add(nonce);
  if (seenNonces.size > 10_000) seenNonces.clear(); // the freshness window bounds replay anyway
  return true;
}

interface Level {
  onHand: number;
  reserved: number;
}

const WAREHOUSES = [
  { code: "FRA1", name: "Frankfurt", region: "EU", capacity: 120_000, utilisation: "0.72" },
  { code: "DUB1", name: "Dublin", region: "EU", capacity: 60_000, utilisation: "0.41" },
  { code: "NYC1", name: "Newark", region: "US", capacity: 200_000, utilisation: "0.88" },
  { code: "SIN1", name: "Singapore", region: "APAC", capacity: 80_000, utilisation: "0.35" },
];

function clientFault(reason: string, detail: Record<string, unknown>): { Fault: Record<string, unknown> } {
  return { Fault: { faultcode: "soap:Client", faultstring: reason, detail, statusCode: 500 } };
}

function services() {
  const stock = new Map<string, Map<string, Level>>([
    [
      "SKU-1001",
      new Map([
        ["FRA1", { onHand: 140, reserved: 12 }],
        ["NYC1", { onHand: 60, reserved: 0 }],
      ]),
    ],
    ["SKU-1002", new Map([["DUB1", { onHand: 8, reserved: 3 }]])],
    [
      "SKU-2001",
      new Map([
        ["SIN1", { onHand: 1200, reserved: 100 }],
        ["FRA1", { onHand: 30, reserved: 30 }],
      ]),
    ],
  ]);
  const reservations = new Map<
    string,
    { reservationId: string; status: string; reserved: number; expiresAt: string }
  >();
  return {
    InventoryService: {
      InventorySoap: {
        GetStockLevel(args: { sku: string; warehouse?: string }) {
          const levels = stock.get(args.sku);
          if (!levels) throw clientFault(`unknown SKU ${args.sku}`, { sku: args.sku });
          const level = [...levels]
            .filter(([code]) => args.warehouse === undefined || code === args.warehouse)
            .map(([warehouse, l]) => ({
              warehouse,
              onHand: l.onHand,
              reserved: l.reserved,
              available: l.onHand - l.reserved,
            }));
          return {
            sku: args.sku,
            level,
            totalAvailable: level.reduce((n, l) => n + l.available, 0),
            asOf: new Date().toISOString(),
          };
        },
        ReserveStock(args: {
          orderRef: string;
          sku: string;
          warehouse: string;
          quantity: number | string;
          allowPartial?: boolean | string;
        }) {
          const key = `${args.orderRef}|${args.sku}|${args.warehouse}`;
          const existing = reservations.get(key);
          if (existing) return existing;
          const level = stock.get(args.sku)?.get(args.warehouse);
          if (!level)
            throw clientFault(`SKU ${args.sku} is not stocked in ${args.warehouse}`, {
              sku: args.sku,
              warehouse: args.warehouse,
            });
          const wanted = Number(args.quantity);
          const available = level.onHand - level.reserved;
          const partial = args.allowPartial === true || args.allowPartial === "true";
          if (wanted > available && (!partial || available === 0)) {
            throw clientFault(`insufficient stock for ${args.sku} in ${args.warehouse}`, {
              requested: wanted,
              available,
            });
          }
          const reserved = Math.min(wanted, available);
          level.reserved += reserved;
          const reservation = {
            reservationId: `RSV-${(reservations.size + 1).toString().padStart(6, "0")}`,
            status: reserved === wanted ? "CONFIRMED" : "PARTIAL",
            reserved,
            expiresAt: new Date(Date.now() + 24 * 3_600_000).toISOString(),
          };
          reservations.set(key, reservation);
          return reservation;
        },
        ListWarehouses(args: { region?: string } | null) {
          // soap hands an empty request element over as null.
          const region = args?.region;
          return { warehouse: WAREHOUSES.filter((w) => !region || w.region === region) };
        },
      },
    },
  };
}

/** Starts the inventory SOAP service on host:port (0 for any free port). */
export async function listenInventorySoap(
  port: number,
  host: string,
  opts: InventorySoapOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(port, host, () => resolve());
  });
  const server = soap.listen(http, {
    path: PATH,
    services: services(),
    xml: readFileSync(opts.wsdlPath, "utf8"),
    uri: opts.wsdlPath,
    suppressStack: true,
  });
  const nonces = new Set<string>();
  server.authenticate = (security: unknown) => {
    const ok = checkUsernameToken(security, { username: opts.username, password: opts.password }, nonces);
    if (!ok)
      opts.logger.warn(
        { service: "inventory-soap" },
        "refused a request: bad or missing WS-Security UsernameToken",
      );
    return ok;
  };
  const { port: actual } = http.address() as AddressInfo;
  const url = `http://${host}:${actual}${PATH}`;
  opts.logger.info({ service: "inventory-soap", url }, "demo inventory SOAP service listening");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

/** Demo backend entry point (src/demo/index.ts). */
export async function start(opts: { repoRoot: string; logger: Logger }): Promise<{ close(): Promise<void> }> {
  return listenInventorySoap(INVENTORY_SOAP_PORT, "127.0.0.1", {
    wsdlPath: join(opts.repoRoot, "demo", "inventory.wsdl"),
    username: "demo",
    password: process.env.INVENTORY_SOAP_PASSWORD || "demo-password",
    logger: opts.logger,
  });
}
