import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/config/load.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import { createDeployment, type Deployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";
import { startRecordingServer, type RecordingServer } from "../helpers/upstreams.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN = "00f067aa0ba902b7";

/** A gateway with one REST tool, api__ping, in front of a server that records its requests. */
async function startPingGateway(): Promise<{
  runtime: Runtime;
  upstream: RecordingServer;
  deployment: Deployment;
}> {
  const upstream = await startRecordingServer(() => ({ json: { ok: true } }));
  const deployment = createDeployment({ scopes: ["tester"] });
  mkdirSync(join(deployment.dir, "connectors", "specs"));
  deployment.write("connectors/specs/ping.json", {
    openapi: "3.0.3",
    info: { title: "ping", version: "1" },
    paths: {
      "/ping": {
        get: {
          operationId: "ping",
          parameters: [{ name: "who", in: "query", schema: { type: "string" } }],
          responses: {
            "200": { description: "ok", content: { "application/json": { schema: { type: "object" } } } },
          },
        },
      },
    },
  });
  deployment.write("connectors/api.json", {
    kind: "rest",
    name: "api",
    spec: "specs/ping.json",
    baseUrl: upstream.url,
  });
  deployment.write("scopes/tester.json", { name: "tester", description: "All.", tools: ["*"] });
  const runtime = await startRuntime(loadGatewayConfig(deployment.configPath), testLogger);
  return { runtime, upstream, deployment };
}

describe("OpenTelemetry spans of a tool call", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let deployment: Deployment;
  let upstream: RecordingServer;
  let runtime: Runtime;

  beforeAll(async () => {
    provider.register();
    ({ runtime, upstream, deployment } = await startPingGateway());
  });

  afterAll(async () => {
    await runtime?.close();
    await upstream?.close();
    deployment?.cleanup();
    await provider.shutdown();
    trace.disable();
  });

  it("records tools/call with authorize, audit and upstream children, and propagates traceparent", async () => {
    exporter.reset();
    const result = await runtime.gateway.callTool(
      runtime.localIdentity!,
      "api__ping",
      { who: "secret-person" },
      { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01` },
    );
    expect(result.isError).toBeFalsy();
    // The answer does not wait for the outcome record's commit (audit.outcomeBeforeAnswer is off),
    // so its span ends after the call's own.
    await runtime.gateway.settled();
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === "tools/call")!;
    expect(root).toBeDefined();
    expect(root.spanContext().traceId).toBe(TRACE_ID);
    expect(root.parentSpanContext?.spanId).toBe(PARENT_SPAN);
    expect(root.attributes).toMatchObject({
      "mcp.tool": "api__ping",
      "portcullis.connector": "api",
      "portcullis.outcome": "ok",
    });
    const children = spans
      .filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId)
      .map((s) => s.name);
    expect(children).toEqual(["authorize", "audit.intent", "upstream", "audit.outcome"]);

    const upstreamSpan = spans.find((s) => s.name === "upstream")!;
    const header = upstream.requests.at(-1)!.headers.traceparent;
    expect(header).toBe(`00-${TRACE_ID}-${upstreamSpan.spanContext().spanId}-01`);

    // Argument values stay out of spans unless observability.traceArguments is on.
    for (const s of spans) expect(JSON.stringify(s.attributes)).not.toContain("secret-person");
  });

  it("marks a refused call on its span", async () => {
    exporter.reset();
    await runtime.gateway.callTool(runtime.localIdentity!, "api__ping", { who: 42 });
    const root = exporter.getFinishedSpans().find((s) => s.name === "tools/call")!;
    expect(root.attributes["portcullis.outcome"]).toBe("refused");
    expect(root.attributes["portcullis.error_code"]).toBe("INVALID_ARGUMENTS");
  });
});

describe("tool calls with tracing off (no OpenTelemetry SDK registered)", () => {
  let deployment: Deployment;
  let upstream: RecordingServer;
  let runtime: Runtime;

  beforeAll(async () => {
    trace.disable();
    ({ runtime, upstream, deployment } = await startPingGateway());
  });

  afterAll(async () => {
    await runtime?.close();
    await upstream?.close();
    deployment?.cleanup();
  });

  it("records no span but passes an incoming traceparent on to the upstream unchanged", async () => {
    const incoming = `00-${TRACE_ID}-${PARENT_SPAN}-01`;
    expect(trace.getTracer("portcullis").startSpan("probe").isRecording()).toBe(false);
    const result = await runtime.gateway.callTool(
      runtime.localIdentity!,
      "api__ping",
      { who: "a" },
      { traceparent: incoming },
    );
    expect(result.isError).toBeFalsy();
    expect(upstream.requests.at(-1)!.headers.traceparent).toBe(incoming);
  });

  it("sends no traceparent when none came in", async () => {
    const result = await runtime.gateway.callTool(runtime.localIdentity!, "api__ping", { who: "b" });
    expect(result.isError).toBeFalsy();
    expect(upstream.requests.at(-1)!.headers.traceparent).toBeUndefined();
  });
});
