import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../../src/core/index.js";
import { soapFactory } from "../../../src/connectors/soap/index.js";
import { connectorContract, findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { NUMBER_CONVERSION_WSDL, startSoapServer, type SoapTestServer } from "./soap-server.js";
import { SHARED_FIXTURES } from "../../helpers/fixtures.js";

const WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

function numberServices(tag: string) {
  const ops = {
    NumberToWords: (args: { ubiNum: string }) => ({
      NumberToWordsResult: `${tag}:${[...String(args.ubiNum)].map((d) => WORDS[Number(d)]).join(" ")}`,
    }),
    NumberToDollars: (args: { dNum: string }) => ({ NumberToDollarsResult: `${tag}:${args.dNum} dollars` }),
  };
  return { NumberConversion: { NumberConversionSoap: ops, NumberConversionSoap12: ops } };
}

async function connect(url: string, extra: Record<string, unknown> = {}): Promise<Connector> {
  const config = soapFactory.configSchema.parse({
    kind: "soap",
    name: "numbers",
    wsdl: NUMBER_CONVERSION_WSDL,
    endpoint: url,
    operations: { NumberToWords: { readOnly: true }, NumberToDollars: { readOnly: true } },
    ...extra,
  });
  return soapFactory.create(config, { baseDir: SHARED_FIXTURES, logger: testLogger });
}

describe("soap connector: number-conversion.wsdl (SOAP 1.1 and 1.2 bindings of one portType)", () => {
  let server11: SoapTestServer;
  let server12: SoapTestServer;

  beforeAll(async () => {
    server11 = await startSoapServer({
      wsdlFile: NUMBER_CONVERSION_WSDL,
      path: "/numbers",
      services: numberServices("v11"),
    });
    server12 = await startSoapServer({
      wsdlFile: NUMBER_CONVERSION_WSDL,
      path: "/numbers",
      services: numberServices("v12"),
      soap12: true,
    });
  });
  afterAll(async () => {
    await server11.close();
    await server12.close();
  });

  it("offers each operation once, bound to the SOAP 1.1 port by default", async () => {
    const c = await connect(server11.url);
    try {
      expect(c.tools().map((t) => t.name)).toEqual(["numbers__NumberToWords", "numbers__NumberToDollars"]);
      const words = findTool(c, "numbers__NumberToWords");
      expect(words.description).toBe(
        "Returns the word corresponding to the positive number passed as parameter. Limited to quadrillions.",
      );
      expect(words.inputSchema).toEqual({
        type: "object",
        properties: {
          ubiNum: {
            anyOf: [
              { type: "integer", minimum: 0, maximum: 9007199254740991 },
              { type: "string", pattern: "^\\+?[0-9]+$" },
            ],
          },
        },
        required: ["ubiNum"],
        additionalProperties: false,
      });
      expect(findTool(c, "numbers__NumberToDollars").inputSchema).toEqual({
        type: "object",
        properties: { dNum: { type: "string", pattern: "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)$" } },
        required: ["dNum"],
        additionalProperties: false,
      });
      expect(words.upstream).toContain("SOAP 1.1");
      expect(words.annotations).toEqual({
        title: "NumberToWords",
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      });
    } finally {
      await c.close();
    }
  });

  it("sends a SOAP 1.1 envelope with a SOAPAction header and types the answer", async () => {
    const c = await connect(server11.url);
    try {
      const before = server11.received.length;
      const result = await c.invoke(
        { tool: findTool(c, "numbers__NumberToWords"), arguments: { ubiNum: "18446744073709551615" } },
        testContext(),
      );
      expect(result.isError ?? false).toBe(false);
      expect(result.structuredContent).toEqual({
        NumberToWordsResult:
          "v11:one eight four four six seven four four zero seven three seven zero nine five five one six one five",
      });
      const req = server11.received[before]!;
      expect(req.headers["content-type"]).toMatch(/^text\/xml/);
      expect(req.headers.soapaction).toBe('""');
      expect(req.body).toContain("http://schemas.xmlsoap.org/soap/envelope/");
      expect(req.body).toContain(
        '<ns1:NumberToWords xmlns:ns1="http://www.dataaccess.com/webservicesserver/"',
      );
      expect(req.body).toContain("<ubiNum>18446744073709551615</ubiNum>");
    } finally {
      await c.close();
    }
  });

  it("refuses an unsignedLong beyond 2^64 - 1 before calling out", async () => {
    const c = await connect(server11.url);
    try {
      await expect(
        c.invoke(
          { tool: findTool(c, "numbers__NumberToWords"), arguments: { ubiNum: "18446744073709551616" } },
          testContext(),
        ),
      ).rejects.toMatchObject({ code: "INVALID_ARGUMENTS" });
    } finally {
      await c.close();
    }
  });

  it("with soapVersion 1.2 binds every operation to the SOAP 1.2 port, still once", async () => {
    const c = await connect(server12.url, { soapVersion: "1.2" });
    try {
      expect(c.tools().map((t) => t.name)).toEqual(["numbers__NumberToWords", "numbers__NumberToDollars"]);
      expect(findTool(c, "numbers__NumberToDollars").upstream).toContain("SOAP 1.2");
      const before = server12.received.length;
      const result = await c.invoke(
        { tool: findTool(c, "numbers__NumberToDollars"), arguments: { dNum: "12.50" } },
        testContext(),
      );
      // soap's server parses the decimal into a JavaScript number; what we sent is exact.
      expect(result.structuredContent).toEqual({ NumberToDollarsResult: "v12:12.5 dollars" });
      const req = server12.received[before]!;
      expect(req.body).toContain("<dNum>12.50</dNum>");
      expect(req.headers["content-type"]).toMatch(/^application\/soap\+xml/);
      expect(req.body).toContain("http://www.w3.org/2003/05/soap-envelope");
    } finally {
      await c.close();
    }
  });

  it("selects a port by name", async () => {
    const c = await connect(server12.url, { port: "NumberConversionSoap12" });
    try {
      expect(c.tools().map((t) => t.upstream?.split(" ").slice(0, 2).join(" "))).toEqual([
        "SOAP 1.2",
        "SOAP 1.2",
      ]);
    } finally {
      await c.close();
    }
  });

  it("include/exclude pick operations; a name the WSDL lacks is a config error naming it", async () => {
    const c = await connect(server11.url, { exclude: ["NumberToDollars"] });
    expect(c.tools().map((t) => t.name)).toEqual(["numbers__NumberToWords"]);
    await c.close();
    await expect(connect(server11.url, { include: ["NumberToWordz"] })).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining('include names operation "NumberToWordz"'),
    });
    await expect(connect(server11.url, { service: "Nope" })).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining('service "Nope" is not in the WSDL (it has: NumberConversion)'),
    });
  });
});

let contractServer: SoapTestServer | undefined;
connectorContract(
  "soap",
  async () => {
    contractServer = await startSoapServer({
      wsdlFile: NUMBER_CONVERSION_WSDL,
      path: "/numbers",
      services: numberServices("c"),
    });
    const connector = await connect(contractServer.url);
    return { connector, okCall: { tool: "numbers__NumberToWords", arguments: { ubiNum: 42 } } };
  },
  async () => {
    await contractServer?.close();
  },
);
