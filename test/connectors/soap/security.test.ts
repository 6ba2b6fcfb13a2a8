import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import soap from "soap";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadJsonFile } from "../../../src/config/load-file.js";
import type { Connector } from "../../../src/core/index.js";
import { soapFactory } from "../../../src/connectors/soap/index.js";
import { checkUsernameToken, listenInventorySoap } from "../../../src/demo/inventory-soap.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { openssl, selfSignedCert } from "../../helpers/tls.js";
import { startSoapServer, type SoapTestServer } from "./soap-server.js";

const REPO = new URL("../../../", import.meta.url).pathname;
const WSDL = join(REPO, "demo", "inventory.wsdl");
const CONNECTORS = join(REPO, "connectors");
const PASSWORD = "s3cret-Pa55word-for-tests";

function captureLogger(): { logger: pino.Logger; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: "trace" }, sink), text: () => chunks.join("") };
}

async function inventoryConnector(
  endpoint: string,
  security: unknown,
  logger = testLogger,
  extra: Record<string, unknown> = {},
): Promise<Connector> {
  const config = soapFactory.configSchema.parse({
    kind: "soap",
    name: "inventory",
    wsdl: "../demo/inventory.wsdl",
    endpoint,
    ...(security ? { security } : {}),
    ...extra,
  });
  return soapFactory.create(config, { baseDir: CONNECTORS, logger });
}

describe("soap connector: WS-Security UsernameToken, verified by the demo inventory service", () => {
  let demo: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    demo = await listenInventorySoap(0, "127.0.0.1", {
      wsdlPath: WSDL,
      username: "demo",
      password: PASSWORD,
      logger: testLogger,
    });
  });
  afterAll(() => demo.close());

  it("connectors/inventory.json is valid and, with PasswordDigest, reaches the demo service", async () => {
    const env = { INVENTORY_SOAP_PASSWORD: PASSWORD };
    const { value } = loadJsonFile(join(CONNECTORS, "inventory.json"), soapFactory.configSchema, env);
    expect(value.endpoint).toBe("http://127.0.0.1:8182/inventory");
    const { logger, text } = captureLogger();
    // The committed endpoint is the demo's fixed port; the test's server has its own.
    const c = await soapFactory.create({ ...value, endpoint: demo.url }, { baseDir: CONNECTORS, logger });
    try {
      expect(c.tools().map((t) => t.name)).toEqual([
        "inventory__GetStockLevel",
        "inventory__ReserveStock",
        "inventory__ListWarehouses",
      ]);
      const level = await c.invoke(
        { tool: findTool(c, "inventory__GetStockLevel"), arguments: { sku: "SKU-1001" } },
        testContext({ logger }),
      );
      expect(level.structuredContent).toMatchObject({
        sku: "SKU-1001",
        level: [
          { warehouse: "FRA1", onHand: 140, reserved: 12, available: 128 },
          { warehouse: "NYC1", onHand: 60, reserved: 0, available: 60 },
        ],
        totalAvailable: 188,
      });
      const reserve = { orderRef: "PO-1", sku: "SKU-1002", warehouse: "DUB1", quantity: 2 };
      const first = await c.invoke(
        { tool: findTool(c, "inventory__ReserveStock"), arguments: reserve },
        testContext({ logger }),
      );
      const again = await c.invoke(
        { tool: findTool(c, "inventory__ReserveStock"), arguments: reserve },
        testContext({ logger }),
      );
      expect(first.structuredContent).toMatchObject({
        reservationId: "RSV-000001",
        status: "CONFIRMED",
        reserved: 2,
      });
      expect(again.structuredContent).toEqual(first.structuredContent);
      await expect(
        c.invoke(
          {
            tool: findTool(c, "inventory__ReserveStock"),
            arguments: { ...reserve, orderRef: "PO-2", quantity: 50 },
          },
          testContext(),
        ),
      ).rejects.toMatchObject({
        code: "UPSTREAM_ERROR",
        message:
          'connector "inventory" (soap): ReserveStock returned SOAP 1.1 fault Client: insufficient stock for SKU-1002 in DUB1 (detail: {"requested":"50","available":"3"})',
      });
      const warehouses = await c.invoke(
        { tool: findTool(c, "inventory__ListWarehouses"), arguments: { region: "EU" } },
        testContext(),
      );
      expect(warehouses.structuredContent).toEqual({
        warehouse: [
          { code: "FRA1", name: "Frankfurt", region: "EU", capacity: 120000, utilisation: "0.72" },
          { code: "DUB1", name: "Dublin", region: "EU", capacity: 60000, utilisation: "0.41" },
        ],
      });
    } finally {
      await c.close();
    }
    expect(text()).not.toContain(PASSWORD);
  });

  it("PasswordText is accepted too", async () => {
    const c = await inventoryConnector(demo.url, {
      type: "wsSecurity",
      username: "demo",
      password: PASSWORD,
    });
    try {
      const r = await c.invoke(
        { tool: findTool(c, "inventory__ListWarehouses"), arguments: {} },
        testContext(),
      );
      expect((r.structuredContent?.warehouse as unknown[]).length).toBe(4);
    } finally {
      await c.close();
    }
  });

  it("a wrong password, a wrong user and no token at all are refused by the service, and the secret is never in the message", async () => {
    const attempts = [
      { type: "wsSecurity", username: "demo", password: "wrong-password", passwordType: "PasswordDigest" },
      { type: "wsSecurity", username: "demo", password: "wrong-password", passwordType: "PasswordText" },
      { type: "wsSecurity", username: "mallory", password: PASSWORD, passwordType: "PasswordDigest" },
      undefined,
    ];
    for (const security of attempts) {
      const { logger, text } = captureLogger();
      const c = await inventoryConnector(demo.url, security, logger);
      try {
        const err = await c
          .invoke({ tool: findTool(c, "inventory__ListWarehouses"), arguments: {} }, testContext({ logger }))
          .catch((e: unknown) => e as Error);
        expect(err).toMatchObject({
          code: "UPSTREAM_ERROR",
          message: expect.stringContaining("Invalid username or password"),
        });
        expect((err as Error).message).not.toContain(PASSWORD);
        expect((err as Error).message).not.toContain("wrong-password");
      } finally {
        await c.close();
      }
      expect(text()).not.toContain(PASSWORD);
      expect(text()).not.toContain("wrong-password");
    }
  });

  it("the service's token check refuses a replayed nonce and a stale Created", () => {
    const nonce = "bm9uY2Utb25lLXR3by10aHJlZQ==";
    const created = new Date().toISOString();
    const token = (c: string) => ({
      UsernameToken: {
        Username: "demo",
        Password: {
          attributes: { Type: "x#PasswordDigest" },
          $value: soap.passwordDigest(nonce, c, PASSWORD),
        },
        Nonce: { $value: nonce },
        Created: c,
      },
    });
    const seen = new Set<string>();
    const expected = { username: "demo", password: PASSWORD };
    expect(checkUsernameToken(token(created), expected, seen)).toBe(true);
    expect(checkUsernameToken(token(created), expected, seen)).toBe(false);
    const stale = new Date(Date.now() - 10 * 60_000).toISOString();
    expect(checkUsernameToken(token(stale), expected, new Set())).toBe(false);
  });
});

describe("soap connector: HTTP Basic and bearer", () => {
  let server: SoapTestServer;
  beforeAll(async () => {
    server = await startSoapServer({
      wsdlFile: WSDL,
      path: "/inventory",
      services: { InventoryService: { InventorySoap: { ListWarehouses: () => ({ warehouse: [] }) } } },
      authenticate: (_security, _cb, req) => {
        const auth = (req as { headers?: Record<string, string | undefined> } | undefined)?.headers
          ?.authorization;
        return (
          auth === `Basic ${Buffer.from(`svc:${PASSWORD}`).toString("base64")}` ||
          auth === `Bearer ${PASSWORD}`
        );
      },
    });
  });
  afterAll(() => server.close());

  for (const [name, good, bad] of [
    [
      "basic",
      { type: "basic", username: "svc", password: PASSWORD },
      { type: "basic", username: "svc", password: "nope" },
    ],
    ["bearer", { type: "bearer", token: PASSWORD }, { type: "bearer", token: "nope" }],
  ] as const) {
    it(`${name}: the right secret passes, a wrong one is refused`, async () => {
      const ok = await inventoryConnector(server.url, good);
      const ko = await inventoryConnector(server.url, bad);
      try {
        const r = await ok.invoke(
          { tool: findTool(ok, "inventory__ListWarehouses"), arguments: {} },
          testContext(),
        );
        expect(r.structuredContent).toEqual({});
        await expect(
          ko.invoke({ tool: findTool(ko, "inventory__ListWarehouses"), arguments: {} }, testContext()),
        ).rejects.toMatchObject({
          code: "UPSTREAM_ERROR",
          message: expect.stringContaining("Invalid username or password"),
        });
      } finally {
        await ok.close();
        await ko.close();
      }
    });
  }
});

describe("soap connector: client TLS certificates", () => {
  let dir: string;
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "portcullis-soap-tls-"));
    const ssl = (...args: string[]) => openssl(dir, ...args);
    writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\n");
    selfSignedCert(dir, "ca", "/CN=test-ca");
    for (const who of ["server", "client"]) {
      ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${who}.key`,
        "-out",
        `${who}.csr`,
        "-subj",
        `/CN=${who}`,
      );
      ssl(
        "x509",
        "-req",
        "-in",
        `${who}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${who}.crt`,
        "-days",
        "1",
        ...(who === "server" ? ["-extfile", "server.ext"] : []),
      );
    }
    const { readFileSync } = await import("node:fs");
    const https = createHttpsServer({
      key: readFileSync(join(dir, "server.key")),
      cert: readFileSync(join(dir, "server.crt")),
      ca: readFileSync(join(dir, "ca.crt")),
      requestCert: true,
      rejectUnauthorized: true,
    });
    await new Promise<void>((r) => https.listen(0, "127.0.0.1", r));
    soap.listen(https, {
      path: "/inventory",
      xml: readFileSync(WSDL, "utf8"),
      uri: WSDL,
      services: { InventoryService: { InventorySoap: { ListWarehouses: () => ({ warehouse: [] }) } } },
    });
    url = `https://127.0.0.1:${(https.address() as AddressInfo).port}/inventory`;
    close = () =>
      new Promise<void>((r) => {
        https.closeAllConnections();
        https.close(() => r());
      });
  });
  afterAll(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("presents the configured client certificate and trusts the configured CA", async () => {
    const c = await inventoryConnector(url, undefined, testLogger, {
      tls: { cert: join(dir, "client.crt"), key: join(dir, "client.key"), ca: join(dir, "ca.crt") },
    });
    try {
      const r = await c.invoke(
        { tool: findTool(c, "inventory__ListWarehouses"), arguments: {} },
        testContext(),
      );
      expect(r.structuredContent).toEqual({});
    } finally {
      await c.close();
    }
  });

  it("without a client certificate the TLS handshake is refused", async () => {
    const c = await inventoryConnector(url, undefined, testLogger, { tls: { ca: join(dir, "ca.crt") } });
    try {
      await expect(
        c.invoke({ tool: findTool(c, "inventory__ListWarehouses"), arguments: {} }, testContext()),
      ).rejects.toMatchObject({ code: "UPSTREAM_UNAVAILABLE" });
    } finally {
      await c.close();
    }
  });

  it("a missing key file is a config error naming the field, not a crash", async () => {
    await expect(
      inventoryConnector(url, undefined, testLogger, {
        tls: { cert: join(dir, "client.crt"), key: join(dir, "missing.key") },
      }),
    ).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining("cannot read a tls file (cert, key or ca): ENOENT"),
    });
  });
});
