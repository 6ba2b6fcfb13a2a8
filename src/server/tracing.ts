import type { Logger } from "pino";
import { SERVER_VERSION } from "./mcp-server.js";

/**
 * OpenTelemetry tracing, configured only by the standard OTEL_* environment variables and off
 * unless they ask for it: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). OTEL_SDK_DISABLED=true wins.
 * The console exporter is refused: under stdio it would write spans into the MCP stream.
 * The OpenTelemetry SDK is imported only when tracing is on (it costs ~15 MB of memory otherwise).
 */
export async function startTracing(
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ shutdown(): Promise<void> } | undefined> {
  if (env.OTEL_SDK_DISABLED === "true") return undefined;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (exporter === "none" || (exporter === undefined && endpoint === undefined)) return undefined;
  if (exporter !== undefined && exporter !== "otlp") {
    logger.warn(
      { exporter },
      "OTEL_TRACES_EXPORTER: only 'otlp' is supported (console would corrupt stdio); tracing stays off",
    );
    return undefined;
  }
  const [
    { OTLPTraceExporter },
    { defaultResource, envDetector, detectResources, resourceFromAttributes },
    sdk,
  ] = await Promise.all([
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-node"),
  ]);
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        "service.name": env.OTEL_SERVICE_NAME ?? "portcullis",
        "service.version": SERVER_VERSION,
      }),
    )
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new sdk.NodeTracerProvider({
    resource,
    spanProcessors: [new sdk.BatchSpanProcessor(new OTLPTraceExporter(endpointOptions(env)))],
  });
  provider.register();
  logger.info({ endpoint }, "OpenTelemetry tracing on (OTLP/HTTP)");
  return {
    // Spans still buffered are flushed; a collector that is down costs them, never the shutdown.
    shutdown: () =>
      provider.shutdown().catch((err: unknown) => {
        logger.warn({ err: (err as Error).message }, "OpenTelemetry: spans not exported at shutdown");
      }),
  };
}

/**
 * The exporter's URL from `env` (the exporter itself would read process.env): the traces endpoint
 * as given, or the base endpoint + `/v1/traces`, as the OTLP exporter specification says.
 */
function endpointOptions(env: NodeJS.ProcessEnv): { url?: string } {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return { url: traces };
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return { url: `${base.replace(/\/+$/, "")}/v1/traces` };
  return {};
}
