import type { Logger } from "pino";
import {
  GatewayError,
  safeJson,
  toolName,
  type Connector,
  type Health,
  type InvocationContext,
  type ToolCall,
  type ToolDefinition,
  type ToolResult,
} from "../../core/index.js";
import type { SoapConfig } from "./config.js";
import { messageSchema } from "./json-schema.js";
import type { OperationModel } from "./operations.js";
import { NotSoapError, bodyToResult, compactDetail, parseEnvelope, type ParsedResponse } from "./response.js";
import { showEndpoint, type HttpAnswer, type SoapTransport } from "./transport.js";
import { XmlSyntaxError } from "./xml-dom.js";
import { MessageWriter } from "./xml-writer.js";

const RETRYABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "EAI_AGAIN"]);
const RETRYABLE_STATUS = new Set([502, 503, 504]);

export interface SoapOperation {
  readonly model: OperationModel;
  readonly tool: ToolDefinition;
  readonly writer: MessageWriter;
  readonly idempotent: boolean;
}

export function buildOperation(connector: string, config: SoapConfig, model: OperationModel): SoapOperation {
  const opts = config.operations?.[model.name];
  const readOnly = opts?.readOnly ?? false;
  const idempotent = opts?.idempotent ?? readOnly;
  const root = model.input.roots[0];
  const rootDoc = model.input.unwrap && root?.shape.kind === "complex" ? root.shape.doc : undefined;
  const endpoint = showEndpoint(config.endpoint ?? model.location);
  const tool: ToolDefinition = {
    name: toolName(connector, model.name),
    connector,
    operation: model.name,
    title: opts?.title ?? model.name,
    description:
      opts?.description ??
      model.documentation ??
      rootDoc ??
      `SOAP operation ${model.name} of service ${model.service} (port ${model.port}).`,
    inputSchema: messageSchema(model.input.roots, model.input.unwrap),
    annotations: {
      title: opts?.title ?? model.name,
      readOnlyHint: readOnly,
      destructiveHint: readOnly ? false : (opts?.destructive ?? true),
      idempotentHint: idempotent,
      // A fixed enterprise backend, not the open web.
      openWorldHint: false,
    },
    upstream: `SOAP ${model.version} ${endpoint} ${model.service}/${model.port}/${model.name}`,
  };
  return { model, tool, writer: new MessageWriter(model.input), idempotent };
}

function abortError(signal: AbortSignal, label: string): GatewayError {
  const reason: unknown = signal.reason;
  if (reason instanceof GatewayError) return reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new GatewayError("UPSTREAM_TIMEOUT", `${label}: the call's time budget ran out`, {
      cause: reason,
    });
  }
  return new GatewayError("UPSTREAM_UNAVAILABLE", `${label}: the call was cancelled before it completed`, {
    cause: reason,
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

export class SoapConnector implements Connector {
  readonly kind = "soap";
  readonly name: string;
  private readonly config: SoapConfig;
  private readonly label: string;
  private readonly transport: SoapTransport;
  private readonly operations: Map<string, SoapOperation>;
  private readonly toolList: readonly ToolDefinition[];
  private readonly logger: Logger;
  private closed = false;

  constructor(config: SoapConfig, operations: SoapOperation[], transport: SoapTransport, logger: Logger) {
    this.name = config.name;
    this.config = config;
    this.label = `connector "${config.name}" (soap)`;
    this.transport = transport;
    this.logger = logger;
    this.operations = new Map(operations.map((o) => [o.tool.name, o]));
    this.toolList = Object.freeze(operations.map((o) => o.tool));
  }

  tools(): readonly ToolDefinition[] {
    return this.toolList;
  }

  async invoke(call: ToolCall, ctx: InvocationContext): Promise<ToolResult> {
    if (this.closed) throw new GatewayError("SHUTTING_DOWN", `${this.label} is closed`);
    if (ctx.signal.aborted) throw abortError(ctx.signal, this.label);
    const op = this.operations.get(call.tool.name);
    if (!op) throw new GatewayError("TOOL_NOT_FOUND", `${this.label} has no tool ${call.tool.name}`);
    const xml = op.writer.write(call.arguments);
    const timeoutMs = Math.min(ctx.timeoutMs, this.config.timeoutMs ?? Infinity);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([ctx.signal, timeout]);
    const attempts = op.idempotent ? 1 + this.config.retries : 1;
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      try {
        const answer = await this.transport.send(op.model, xml, signal, timeout, timeoutMs, ctx.traceparent);
        ctx.logger.debug(
          {
            connector: this.name,
            operation: op.model.name,
            attempt,
            status: answer.status,
            ms: Date.now() - started,
          },
          "soap call answered",
        );
        return this.interpret(op, answer);
      } catch (err) {
        if (attempt >= attempts || signal.aborted || !this.retryable(err)) throw err;
        const delay = this.config.retryBackoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        ctx.logger.warn(
          {
            connector: this.name,
            operation: op.model.name,
            attempt,
            code: (err as GatewayError).code,
            delayMs: Math.round(delay),
          },
          "soap call failed; retrying (operation is idempotent)",
        );
        await sleep(delay, signal);
        if (signal.aborted)
          throw timeout.aborted ? this.timeoutError(timeoutMs) : abortError(ctx.signal, this.label);
      }
    }
  }

  private timeoutError(timeoutMs: number): GatewayError {
    return new GatewayError(
      "UPSTREAM_TIMEOUT",
      `${this.label}: no answer within ${timeoutMs} ms (retries included)`,
    );
  }

  private retryable(err: unknown): boolean {
    if (!(err instanceof GatewayError)) return false;
    const code = err.details?.code;
    const status = err.details?.httpStatus;
    if (err.code === "UPSTREAM_UNAVAILABLE") return typeof code === "string" && RETRYABLE_CODES.has(code);
    return (
      err.code === "UPSTREAM_ERROR" &&
      typeof status === "number" &&
      RETRYABLE_STATUS.has(status) &&
      !err.details?.fault
    );
  }

  private httpError(op: SoapOperation, answer: HttpAnswer): GatewayError {
    const text = answer.statusText ? ` ${answer.statusText}` : "";
    return new GatewayError(
      "UPSTREAM_ERROR",
      `${this.label}: ${op.model.name} failed: the endpoint answered HTTP ${answer.status}${text} without a SOAP fault`,
      { details: { httpStatus: answer.status } },
    );
  }

  private interpret(op: SoapOperation, answer: HttpAnswer): ToolResult {
    const what = `${this.label}: ${op.model.name}`;
    if (answer.body.trim() === "") {
      if (answer.status >= 400) throw this.httpError(op, answer);
      if (!op.model.output) return { structuredContent: {}, text: "{}" };
      throw new GatewayError("UPSTREAM_BAD_RESPONSE", `${what}: the endpoint answered with an empty body`);
    }
    let parsed: ParsedResponse;
    try {
      parsed = parseEnvelope(answer.body);
    } catch (err) {
      if (answer.status >= 400) throw this.httpError(op, answer);
      if (err instanceof XmlSyntaxError) {
        throw new GatewayError(
          "UPSTREAM_BAD_RESPONSE",
          `${what}: the endpoint answered malformed XML: ${err.message}`,
          { cause: err },
        );
      }
      if (err instanceof NotSoapError) {
        throw new GatewayError(
          "UPSTREAM_BAD_RESPONSE",
          `${what}: the endpoint answered XML that is not a SOAP message (${err.message})`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
    if (parsed.kind === "fault") {
      const f = parsed.fault;
      const code = f.subcode ? `${f.code}/${f.subcode}` : f.code;
      const detail = compactDetail(f.detail);
      throw new GatewayError(
        "UPSTREAM_ERROR",
        `${what} returned SOAP ${f.version} fault ${code}: ${f.reason || "(no reason given)"}${detail ? ` (detail: ${detail})` : ""}`,
        {
          details: {
            fault: {
              code: f.code,
              ...(f.subcode ? { subcode: f.subcode } : {}),
              reason: f.reason,
              ...(f.detail !== undefined ? { detail: f.detail } : {}),
            },
            httpStatus: answer.status,
          },
        },
      );
    }
    if (answer.status >= 400) throw this.httpError(op, answer);
    const structured = bodyToResult(parsed.body, op.model.output);
    return { structuredContent: structured, text: safeJson(structured) };
  }

  async health(): Promise<Health> {
    if (this.closed) return { ok: false, detail: "closed" };
    const urls = [...this.operations.values()]
      .map((o) => this.config.endpoint ?? o.model.location)
      .filter((u): u is string => u !== undefined);
    return this.transport.reachable(urls);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
    this.logger.debug({ connector: this.name }, "soap connector closed");
  }
}
