import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../../src/core/index.js";
import { soapFactory } from "../../../src/connectors/soap/index.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { FIXTURES, startSoapServer, type SoapTestServer } from "./soap-server.js";

const FIFTY_MB = 50 * 1024 * 1024;
const OK_ENVELOPE =
  '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
  '<c:FindProductsResponse xmlns:c="urn:example:catalog"><c:total>0</c:total></c:FindProductsResponse></s:Body></s:Envelope>';

const product = {
  attributes: { id: "9007199254740993", currency: "EUR" },
  sku: "A-1",
  name: "Anvil",
  price: "1234567890123.45",
  weightKg: "12.5",
  available: "true",
  releaseDate: "2024-02-29",
  updatedAt: "2024-03-01T10:00:00Z",
  stock: "7",
  category: { name: "Tools", parent: { name: "Hardware", parent: { name: "Root" } } },
  description: { attributes: { "xsi:nil": "true" } },
  tags: ["heavy", "iron"],
};

function catalogServices() {
  return {
    CatalogService: {
      CatalogPort: {
        FindProducts: async (args: { query: string }) => {
          if (args.query === "slow") await new Promise((r) => setTimeout(r, 3_000));
          if (args.query === "fail") {
            throw {
              Fault: {
                faultcode: "soap:Client",
                faultstring: "Unknown query",
                detail: { problem: { field: "query", code: "Q42" } },
                statusCode: 500,
              },
            };
          }
          if (args.query === "sender") {
            throw {
              Fault: {
                Code: { Value: "soap:Sender", Subcode: { Value: "c:OutOfStock" } },
                Reason: { Text: "Not enough stock" },
                Detail: { available: 3 },
                statusCode: 500,
              },
            };
          }
          if (args.query === "one") return { product: [{ ...product, tags: ["single"] }], total: "1" };
          return {
            product: [product, { ...product, attributes: { id: "2" }, sku: "B-2", tags: [] }],
            total: "18446744073709551615",
          };
        },
        CreateOrder: () => ({
          orderId: "42",
          total: { attributes: { currency: "EUR" }, $value: "21.00" },
          status: "ACTIVE",
          createdAt: "2024-03-01T10:00:00Z",
        }),
        GetCategory: (args: { category: unknown }) => ({ category: args.category }),
      },
    },
  };
}

describe("soap connector: calls against a real soap.listen server (catalog.wsdl)", () => {
  let server: SoapTestServer;
  let server12: SoapTestServer;
  let flakyHits = 0;
  let hugeWritten = 0;
  let hugeDone: Promise<void> = Promise.resolve();
  let closedPort = 0;

  beforeAll(async () => {
    server = await startSoapServer({
      wsdlFile: `${FIXTURES}catalog.wsdl`,
      path: "/catalog",
      services: catalogServices(),
      other: (req, res) => {
        req.resume();
        if (req.url === "/html") {
          res
            .writeHead(503, { "content-type": "text/html" })
            .end("<html><body>Service Unavailable</body></html>");
        } else if (req.url === "/garbage") {
          res
            .writeHead(200, { "content-type": "text/xml" })
            .end("<soap:Envelope><soap:Body><unclosed></soap:Body>");
        } else if (req.url === "/not-soap") {
          res.writeHead(200, { "content-type": "text/xml" }).end("<order><id>1</id></order>");
        } else if (req.url === "/flaky") {
          flakyHits++;
          if (flakyHits % 3 !== 0) res.writeHead(503).end();
          else res.writeHead(200, { "content-type": "text/xml" }).end(OK_ENVELOPE);
        } else if (req.url === "/huge") {
          hugeWritten = 0;
          hugeDone = new Promise((resolve) => {
            const chunk = Buffer.alloc(64 * 1024, "x");
            res.writeHead(200, { "content-type": "text/xml" });
            res.write('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x>');
            const pump = (): void => {
              while (hugeWritten < FIFTY_MB && !res.destroyed) {
                hugeWritten += chunk.length;
                if (!res.write(chunk)) return void res.once("drain", pump);
              }
              if (!res.destroyed) res.end("</x></s:Body></s:Envelope>");
              resolve();
            };
            res.once("close", () => resolve());
            pump();
          });
        } else res.writeHead(404).end();
      },
    });
    server12 = await startSoapServer({
      wsdlFile: `${FIXTURES}catalog.wsdl`,
      path: "/catalog",
      services: catalogServices(),
      soap12: true,
    });
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
  });
  afterAll(async () => {
    await server.close();
    await server12.close();
  });

  async function connector(endpoint: string, extra: Record<string, unknown> = {}): Promise<Connector> {
    const config = soapFactory.configSchema.parse({
      kind: "soap",
      name: "catalog",
      wsdl: "catalog.wsdl",
      endpoint,
      ...extra,
    });
    return soapFactory.create(config, { baseDir: FIXTURES, logger: testLogger });
  }

  function base(): string {
    return server.url.replace(/\/catalog$/, "");
  }

  it("types the response as the XSD says: numbers, booleans, exact decimals and longs, arrays, attributes, nil", async () => {
    const c = await connector(server.url);
    try {
      const result = await c.invoke(
        { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "all" } },
        testContext(),
      );
      const typed = {
        id: "9007199254740993",
        currency: "EUR",
        sku: "A-1",
        name: "Anvil",
        price: "1234567890123.45",
        weightKg: 12.5,
        available: true,
        releaseDate: "2024-02-29",
        updatedAt: "2024-03-01T10:00:00Z",
        stock: 7,
        // The third level is past the recursion cut: kept, untyped.
        category: { name: "Tools", parent: { name: "Hardware", parent: { name: "Root" } } },
        description: null,
        tags: ["heavy", "iron"],
      };
      const { currency: _c, tags: _t, ...second } = typed;
      expect(result.structuredContent).toEqual({
        product: [typed, { ...second, id: 2, sku: "B-2" }],
        total: "18446744073709551615",
      });
      expect(JSON.parse(result.text!)).toEqual(result.structuredContent);
    } finally {
      await c.close();
    }
  });

  it("returns maxOccurs > 1 elements as arrays even when one came back", async () => {
    const c = await connector(server.url);
    try {
      const result = await c.invoke(
        { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "one" } },
        testContext(),
      );
      const products = result.structuredContent?.product as { tags: unknown }[];
      expect(products).toHaveLength(1);
      expect(products[0]!.tags).toEqual(["single"]);
      expect(result.structuredContent?.total).toBe(1);
    } finally {
      await c.close();
    }
  });

  it("writes arguments in schema order, in the right namespaces, escaped, with xsi:nil", async () => {
    const c = await connector(server.url);
    try {
      const before = server.received.length;
      const result = await c.invoke(
        {
          tool: findTool(c, "catalog__CreateOrder"),
          arguments: {
            express: true,
            note: null,
            shipTo: { country: "DE", city: "Berlin", street: "1 Main St & <Co>" },
            line: [{ unitPrice: { value: "10.50", currency: "EUR" }, quantity: 2, sku: "A-1" }],
            customerId: "18446744073709551615",
          },
        },
        testContext(),
      );
      expect(server.received[before]!.body).toContain(
        '<soap:Body><ns1:CreateOrder xmlns:ns1="urn:example:catalog" xmlns:ns2="urn:example:common" ' +
          'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ns1:customerId>18446744073709551615</ns1:customerId>' +
          '<ns1:line><ns1:sku>A-1</ns1:sku><ns1:quantity>2</ns1:quantity><ns1:unitPrice currency="EUR">10.50</ns1:unitPrice></ns1:line>' +
          "<ns1:shipTo><ns2:street>1 Main St &amp; &lt;Co&gt;</ns2:street><ns2:city>Berlin</ns2:city><ns2:country>DE</ns2:country></ns1:shipTo>" +
          '<ns1:note xsi:nil="true"/><ns1:express>true</ns1:express></ns1:CreateOrder></soap:Body>',
      );
      expect(result.structuredContent).toEqual({
        orderId: 42,
        total: { currency: "EUR", value: "21.00" },
        status: "ACTIVE",
        createdAt: "2024-03-01T10:00:00Z",
      });
    } finally {
      await c.close();
    }
  });

  it("refuses arguments the XSD cannot carry, naming the argument, before calling out", async () => {
    const c = await connector(server.url);
    try {
      const tool = findTool(c, "catalog__CreateOrder");
      const good = {
        customerId: 1,
        line: [{ sku: "A", quantity: 1, unitPrice: { value: "1.00", currency: "EUR" } }],
        shipTo: { street: "s", city: "c", country: "DE" },
      };
      const before = server.received.length;
      await expect(
        c.invoke({ tool, arguments: { ...good, customerId: -1 } }, testContext()),
      ).rejects.toMatchObject({
        code: "INVALID_ARGUMENTS",
        message: "argument customerId: must be at least 0",
      });
      await expect(
        c.invoke(
          { tool, arguments: { ...good, line: [{ ...good.line[0], quantity: 40000 }] } },
          testContext(),
        ),
      ).rejects.toMatchObject({ message: "argument line[0].quantity: must be at most 32767" });
      await expect(
        c.invoke(
          { tool, arguments: { ...good, shipTo: { ...good.shipTo, street: "a\u0000b" } } },
          testContext(),
        ),
      ).rejects.toMatchObject({
        message: "argument shipTo.street: contains characters XML cannot carry",
      });
      await expect(c.invoke({ tool, arguments: { ...good, extra: 1 } }, testContext())).rejects.toMatchObject(
        {
          message: "argument extra: unknown property",
        },
      );
      expect(server.received.length).toBe(before);
    } finally {
      await c.close();
    }
  });

  it("maps a SOAP 1.1 fault to UPSTREAM_ERROR with code, string and compact detail", async () => {
    const c = await connector(server.url);
    try {
      const err = await c
        .invoke({ tool: findTool(c, "catalog__FindProducts"), arguments: { query: "fail" } }, testContext())
        .catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: "UPSTREAM_ERROR",
        message:
          'connector "catalog" (soap): FindProducts returned SOAP 1.1 fault Client: Unknown query (detail: {"problem":{"field":"query","code":"Q42"}})',
        details: {
          fault: {
            code: "Client",
            reason: "Unknown query",
            detail: { problem: { field: "query", code: "Q42" } },
          },
          httpStatus: 500,
        },
      });
    } finally {
      await c.close();
    }
  });

  it("maps a SOAP 1.2 fault with its subcode", async () => {
    const c = await connector(server12.url);
    try {
      const err = await c
        .invoke({ tool: findTool(c, "catalog__FindProducts"), arguments: { query: "sender" } }, testContext())
        .catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: "UPSTREAM_ERROR",
        message:
          'connector "catalog" (soap): FindProducts returned SOAP 1.2 fault Sender/OutOfStock: Not enough stock (detail: {"available":"3"})',
        details: {
          fault: {
            code: "Sender",
            subcode: "OutOfStock",
            reason: "Not enough stock",
            detail: { available: "3" },
          },
        },
      });
    } finally {
      await c.close();
    }
  });

  it("gives HTTP errors, malformed XML, non-SOAP XML and an unreachable endpoint each their own message", async () => {
    const cases: [string, string, string][] = [
      [
        `${base()}/html`,
        "UPSTREAM_ERROR",
        "the endpoint answered HTTP 503 Service Unavailable without a SOAP fault",
      ],
      [`${base()}/garbage`, "UPSTREAM_BAD_RESPONSE", "the endpoint answered malformed XML: "],
      [
        `${base()}/not-soap`,
        "UPSTREAM_BAD_RESPONSE",
        "the endpoint answered XML that is not a SOAP message (root element is <order>",
      ],
      [
        `http://127.0.0.1:${closedPort}/catalog`,
        "UPSTREAM_UNAVAILABLE",
        `cannot reach http://127.0.0.1:${closedPort}/catalog (ECONNREFUSED)`,
      ],
    ];
    for (const [endpoint, code, text] of cases) {
      const c = await connector(endpoint);
      try {
        const err = await c
          .invoke({ tool: findTool(c, "catalog__FindProducts"), arguments: { query: "x" } }, testContext())
          .catch((e: unknown) => e);
        expect(err, endpoint).toMatchObject({ code, message: expect.stringContaining(text) });
      } finally {
        await c.close();
      }
    }
  });

  it("times out a slow call with UPSTREAM_TIMEOUT", async () => {
    const c = await connector(server.url);
    try {
      await expect(
        c.invoke(
          { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "slow" } },
          testContext({ timeoutMs: 300 }),
        ),
      ).rejects.toMatchObject({
        code: "UPSTREAM_TIMEOUT",
        message: expect.stringContaining("did not answer within 300 ms"),
      });
    } finally {
      await c.close();
    }
  });

  it("stops reading a 50 MB response at maxResponseBytes instead of buffering it", async () => {
    const c = await connector(`${base()}/huge`);
    try {
      await expect(
        c.invoke(
          { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "x" } },
          testContext({ timeoutMs: 20_000 }),
        ),
      ).rejects.toMatchObject({
        code: "UPSTREAM_BAD_RESPONSE",
        message: expect.stringContaining("exceeds the 10485760-byte limit (maxResponseBytes)"),
      });
      await hugeDone;
      expect(hugeWritten).toBeLessThan(FIFTY_MB);
    } finally {
      await c.close();
    }
  });

  it("retries only operations configured idempotent", async () => {
    const flaky = `${base()}/flaky`;
    const idem = await connector(flaky, {
      operations: { FindProducts: { readOnly: true } },
      retryBackoffMs: 10,
    });
    const plain = await connector(flaky, { retryBackoffMs: 10 });
    try {
      flakyHits = 0;
      const ok = await idem.invoke(
        { tool: findTool(idem, "catalog__FindProducts"), arguments: { query: "x" } },
        testContext(),
      );
      expect(ok.structuredContent).toEqual({ total: 0 });
      expect(flakyHits).toBe(3);
      flakyHits = 0;
      await expect(
        plain.invoke(
          { tool: findTool(plain, "catalog__FindProducts"), arguments: { query: "x" } },
          testContext(),
        ),
      ).rejects.toMatchObject({ code: "UPSTREAM_ERROR", details: { httpStatus: 503 } });
      expect(flakyHits).toBe(1);
    } finally {
      await idem.close();
      await plain.close();
    }
  });

  it("propagates the trace context as a traceparent header", async () => {
    const c = await connector(server.url);
    try {
      const before = server.received.length;
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      await c.invoke(
        { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "one" } },
        testContext({ traceparent }),
      );
      expect(server.received[before]!.headers.traceparent).toBe(traceparent);
    } finally {
      await c.close();
    }
  });

  it("stops waiting when the caller cancels", async () => {
    const c = await connector(server.url);
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("client went away")), 100);
      await expect(
        c.invoke(
          { tool: findTool(c, "catalog__FindProducts"), arguments: { query: "slow" } },
          testContext({ signal: ac.signal }),
        ),
      ).rejects.toMatchObject({
        code: "UPSTREAM_UNAVAILABLE",
        message: expect.stringContaining("was cancelled"),
      });
    } finally {
      await c.close();
    }
  });

  it("round-trips a recursive type within its cut", async () => {
    const c = await connector(server.url);
    try {
      const category = { name: "Tools", parent: { name: "Hardware" } };
      const result = await c.invoke(
        { tool: findTool(c, "catalog__GetCategory"), arguments: { category } },
        testContext(),
      );
      expect(result.structuredContent).toEqual({ category });
    } finally {
      await c.close();
    }
  });
});
