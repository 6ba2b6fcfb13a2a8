import {
  context,
  trace,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Context,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics of one gateway. Each gateway owns its registry (not prom-client's global
 * one), so two gateways in one process — tests, benchmarks — never share counters.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: "portcullis_tool_calls_total",
    help: "Tool calls that reached a connector, by outcome (ok, error).",
    labelNames: ["connector", "tool", "outcome"] as const,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: "portcullis_tool_call_refusals_total",
    help: "Tool calls refused before any upstream was touched, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly callSeconds = new Histogram({
    name: "portcullis_tool_call_duration_seconds",
    help: "Whole tools/call latency inside the gateway, checks and audit included.",
    labelNames: ["connector", "tool"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly upstreamSeconds = new Histogram({
    name: "portcullis_upstream_duration_seconds",
    help: "Latency of the upstream call alone.",
    labelNames: ["connector", "tool"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly auditAppendSeconds = new Histogram({
    name: "portcullis_audit_append_duration_seconds",
    help: "Time until an audit record was durable, as the pipeline waited for it.",
    labelNames: ["type"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly auditGroupSize = new Histogram({
    name: "portcullis_audit_group_commit_size",
    help: "Records written per audit group-commit transaction.",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: "portcullis_tool_calls_in_flight",
    help: "Tool calls currently being processed.",
    registers: [this.registry],
  });
  readonly circuitState = new Gauge({
    name: "portcullis_circuit_state",
    help: "Circuit breaker state per connector: 0 closed, 1 half-open, 2 open.",
    labelNames: ["connector"] as const,
    registers: [this.registry],
  });
  readonly mqLateReplies = new Counter({
    name: "portcullis_mq_late_replies_total",
    help: "MQ replies that arrived after their call had timed out (dropped).",
    labelNames: ["connector"] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: "portcullis_" });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Refusal codes → the `reason` label operators alert on. */
export function refusalReason(code: string): string {
  switch (code) {
    case "TOOL_NOT_FOUND":
      return "unknown_tool";
    case "INVALID_ARGUMENTS":
      return "invalid_arguments";
    case "DENIED_CONSTRAINT":
      return "constraint";
    case "DENIED_RATE_LIMIT":
      return "rate_limit";
    case "APPROVAL_REQUIRED":
    case "DENIED_APPROVAL":
      return "approval";
    case "DENIED_LOOP":
      return "loop";
    case "AUDIT_UNAVAILABLE":
      return "audit";
    default:
      return "other";
  }
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The context of an incoming W3C `traceparent`, or the active context when absent or malformed. */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return context.active();
  return trace.setSpanContext(context.active(), {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** The `traceparent` to send upstream so the backend's spans join this trace. */
export function traceparentOf(span: Span): string | undefined {
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, "0")}`;
}

export function tracer(): Tracer {
  return trace.getTracer("portcullis");
}

/**
 * Runs `fn` in a child span of `parent`, recording failure. A span that records nothing (tracing
 * off, or not sampled) still carries the parent's trace context for `traceparentOf`, but needs no
 * status or end: `fn`'s promise is returned as it is, without the wrapping async frame, whose
 * promise and resumption cost each call's critical path a few microseconds per span.
 */
export function inSpan<T>(
  name: string,
  parent: Context,
  attributes: Record<string, string | number | boolean>,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
): Promise<T> {
  const span = tracer().startSpan(name, { attributes, kind }, parent);
  if (span.isRecording()) return recorded(span, fn);
  try {
    return fn(span);
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

async function recorded<T>(span: Span, fn: (span: Span) => Promise<T>): Promise<T> {
  try {
    return await fn(span);
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as { code?: string }).code ?? "error" });
    throw err;
  } finally {
    span.end();
  }
}

export { SpanKind, SpanStatusCode, trace, context };
