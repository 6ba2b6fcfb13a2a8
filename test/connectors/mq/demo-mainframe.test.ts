import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { loadJsonFile } from "../../../src/config/load-file.js";
import { mqFactory } from "../../../src/connectors/mq/index.js";
import { replyRecord, start } from "../../../src/demo/mainframe-mq.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { serviceUrl } from "../../helpers/services.js";
import { TcpProxy } from "./amqp-helpers.js";

const url = serviceUrl("rabbitmq");
const repoRoot = process.cwd();

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

describe("demo mainframe order-status responder", () => {
  const saved = process.env.PORTCULLIS_DEMO_AMQP_URL;
  afterAll(() => {
    if (saved === undefined) delete process.env.PORTCULLIS_DEMO_AMQP_URL;
    else process.env.PORTCULLIS_DEMO_AMQP_URL = saved;
  });

  it("writes records exactly as connectors/mainframe.json lays them out", () => {
    expect(replyRecord("A-1001")).toBe("A-1001    SHIPPED   20250301DHL       0000123450+EUR003");
    expect(replyRecord("A-1004")).toHaveLength(55);
    expect(replyRecord("Z-0000")).toBe(`Z-0000    NOTFOUND  ${" ".repeat(18)}0000000000+   000`);
  });

  it("logs one clear line and starts nothing when no broker is reachable", async () => {
    const proxy = await TcpProxy.start(new URL("amqp://127.0.0.1:5672"));
    process.env.PORTCULLIS_DEMO_AMQP_URL = proxy.url("amqp://demo:secret@127.0.0.1");
    await proxy.close();
    const { logger, lines } = capturingLogger();
    const demo = await start({ repoRoot, logger });
    await demo.close();
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]!.msg)).toMatch(
      /demo mainframe \(MQ\) not started: no RabbitMQ at amqp:\/\/\*\*\*@127\.0\.0\.1:\d+; the "mainframe" connector is left out\. To enable it, start RabbitMQ there or set PORTCULLIS_DEMO_AMQP_URL/,
    );
    expect(JSON.stringify(lines)).not.toContain("secret");
  });

  it.skipIf(!url)("answers the shipped mainframe connector over the real broker", async () => {
    process.env.PORTCULLIS_DEMO_AMQP_URL = url!;
    const demo = await start({ repoRoot, logger: testLogger });
    const { value } = loadJsonFile(
      join(repoRoot, "connectors/mainframe.json"),
      mqFactory.configSchema,
      process.env,
    );
    const connector = await mqFactory.create(value, {
      baseDir: join(repoRoot, "connectors"),
      logger: testLogger,
    });
    try {
      const tool = findTool(connector, "mainframe__order_status");
      const result = await connector.invoke({ tool, arguments: { orderId: "A-1004" } }, testContext());
      expect(result.structuredContent).toEqual({
        orderId: "A-1004",
        status: "CANCELLED",
        statusDate: "20250215",
        carrier: "",
        total: "-25.00",
        currency: "EUR",
        lineCount: 2,
      });
    } finally {
      await connector.close();
      await demo.close();
    }
  });
});
