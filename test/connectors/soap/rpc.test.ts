import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { soapFactory } from "../../../src/connectors/soap/index.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { FIXTURES, startSoapServer, type SoapTestServer } from "./soap-server.js";

describe("soap connector: rpc/literal", () => {
  let server: SoapTestServer;
  beforeAll(async () => {
    server = await startSoapServer({
      wsdlFile: `${FIXTURES}rpc.wsdl`,
      path: "/rpc",
      services: {
        RpcService: {
          RpcPort: {
            Add: (args: { a: string; b: string }) => ({ sum: String(Number(args.a) + Number(args.b)) }),
            Legacy: () => ({ y: "never" }),
          },
        },
      },
    });
  });
  afterAll(() => server.close());

  it("offers each part as an argument, calls inside the rpc wrapper and skips rpc/encoded operations", async () => {
    const config = soapFactory.configSchema.parse({
      kind: "soap",
      name: "rpc",
      wsdl: "rpc.wsdl",
      endpoint: server.url,
    });
    const c = await soapFactory.create(config, { baseDir: FIXTURES, logger: testLogger });
    try {
      expect(c.tools().map((t) => t.name)).toEqual(["rpc__Add"]);
      const tool = findTool(c, "rpc__Add");
      const int = { type: "integer", minimum: -2147483648, maximum: 2147483647 };
      expect(tool.inputSchema).toEqual({
        type: "object",
        properties: { a: int, b: int },
        required: ["a", "b"],
        additionalProperties: false,
      });
      const before = server.received.length;
      const result = await c.invoke({ tool, arguments: { a: 40, b: 2 } }, testContext());
      expect(server.received[before]!.body).toMatch(/<tns:Add><a[^>]*>40<\/a><b[^>]*>2<\/b><\/tns:Add>/);
      expect(result.structuredContent).toEqual({ sum: 42 });
    } finally {
      await c.close();
    }
  });
});
