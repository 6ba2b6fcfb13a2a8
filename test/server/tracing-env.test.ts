import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { trace } from "@opentelemetry/api";
import { pino, type Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startTracing } from "../../src/server/tracing.js";

/** A real OTLP/HTTP collector on port 0 that keeps what it receives. */
async function collector(): Promise<{
  url: string;
  received: { path: string; body: string }[];
  server: Server;
}> {
  const received: { path: string; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

function captureLogger(): { logger: Logger; lines: () => string[] } {
  const out: string[] = [];
  return { logger: pino({ level: "info" }, { write: (l: string) => void out.push(l) }), lines: () => out };
}

afterEach(() => trace.disable());

describe("tracing from OTEL_* variables", () => {
  it("stays off unless asked for, and refuses the console exporter (it would corrupt stdio)", async () => {
    const { logger, lines } = captureLogger();
    expect(await startTracing(logger, {})).toBeUndefined();
    expect(
      await startTracing(logger, { OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }),
    ).toBeUndefined();
    expect(await startTracing(logger, { OTEL_TRACES_EXPORTER: "console" })).toBeUndefined();
    expect(lines().join("")).toMatch(/only 'otlp' is supported/);
  });

  it("exports spans to the configured OTLP/HTTP endpoint", async () => {
    const c = await collector();
    try {
      const { logger } = captureLogger();
      const tracing = await startTracing(logger, {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${c.url}/v1/traces`,
        OTEL_SERVICE_NAME: "portcullis-test",
      });
      expect(tracing).toBeDefined();
      trace.getTracer("test").startSpan("tools/call probe").end();
      await tracing!.shutdown();
      expect(c.received.map((r) => r.path)).toContain("/v1/traces");
      const body = c.received.map((r) => r.body).join("");
      expect(body).toContain("tools/call probe");
      expect(body).toContain("portcullis-test");
    } finally {
      c.server.close();
    }
  });

  it("shuts down cleanly when the collector is gone, saying the spans were not exported", async () => {
    const c = await collector();
    await new Promise<void>((resolve) => c.server.close(() => resolve()));
    const { logger, lines } = captureLogger();
    const tracing = await startTracing(logger, { OTEL_EXPORTER_OTLP_ENDPOINT: c.url });
    trace.getTracer("test").startSpan("lost").end();
    await expect(tracing!.shutdown()).resolves.toBeUndefined();
    expect(lines().join("")).toMatch(/spans not exported at shutdown/);
  });
});
