import { createHash } from "node:crypto";
import { connect } from "node:net";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import type { Logger } from "pino";
import {
  GatewayError,
  isGatewayError,
  isPlainObject,
  type Connector,
  type Health,
  type InvocationContext,
  type ToolCall,
  type ToolDefinition,
  type ToolResult,
} from "../../core/index.js";
import type { AuthStrategy } from "./auth.js";
import { DEFAULTS, type RestConfig } from "./config.js";
import { statusError, transportError, UpstreamFailure } from "./errors.js";
import { classify, TransportFailure, type HttpTransport, type RawResponse } from "./http.js";
import type { SecretRedactor } from "./redact.js";
import { prepareRequest, type PreparedRequest } from "./request.js";
import { decodeBody, projectDense, shrinkToFit, textResult } from "./response.js";
import { firstRetryDelay, isRetryable, retryPolicy, type RetrySettings } from "./retry.js";
import type { BoundTool } from "./tools.js";

const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;
const USER_AGENT = "portcullis-rest-connector";

export interface RestConnectorParts {
  config: RestConfig;
  baseUrl: URL;
  tools: BoundTool[];
  transport: HttpTransport;
  auth: AuthStrategy;
  redactor: SecretRedactor;
  logger: Logger;
}

export class RestConnector implements Connector {
  readonly kind = "rest";
  readonly name: string;
  private readonly byName: Map<string, BoundTool>;
  private readonly definitions: readonly ToolDefinition[];
  private readonly retry: RetrySettings;
  private readonly validators = new Map<string, ValidateFunction | null>();
  private ajv: Ajv2020 | undefined;
  private closed = false;

  constructor(private readonly parts: RestConnectorParts) {
    this.name = parts.config.name;
    this.byName = new Map(parts.tools.map((t) => [t.definition.name, t]));
    this.definitions = Object.freeze(parts.tools.map((t) => t.definition));
    const r = parts.config.retry ?? {};
    this.retry = {
      maxAttempts: r.maxAttempts ?? DEFAULTS.maxAttempts,
      initialDelayMs: r.initialDelayMs ?? DEFAULTS.initialDelayMs,
      maxDelayMs: r.maxDelayMs ?? DEFAULTS.maxDelayMs,
    };
  }

  tools(): readonly ToolDefinition[] {
    return this.definitions;
  }

  async invoke(call: ToolCall, ctx: InvocationContext): Promise<ToolResult> {
    if (this.closed) throw new GatewayError("SHUTTING_DOWN", `connector "${this.name}" (rest) is closed`);
    const tool = this.byName.get(call.tool.name);
    if (!tool)
      throw new GatewayError(
        "TOOL_NOT_FOUND",
        `connector "${this.name}" (rest) has no tool ${call.tool.name}`,
      );
    const where = `connector "${this.name}" (rest): ${tool.definition.name}`;
    const budgetMs = Math.min(ctx.timeoutMs, this.parts.config.timeoutMs ?? DEFAULTS.timeoutMs);
    if (ctx.signal.aborted)
      throw transportError(where, classify(ctx.signal.reason, ctx.signal, false), budgetMs);

    const { signal, dispose } = deadlineSignal(ctx, budgetMs);
    const deadline = Date.now() + budgetMs;
    const headers = this.baseHeaders(tool, ctx);
    const started = Date.now();
    let attempts = 0;
    const once = async (): Promise<RawResponse> => {
      attempts++;
      // Rebuilt per attempt: auth may add a fresh token, and the URL object is mutated by query auth.
      const req = prepareRequest(this.name, tool, call.arguments, this.parts.baseUrl);
      Object.assign(req.headers, headers);
      return this.sendWithAuth(where, req, signal, budgetMs);
    };
    const mayRetry = tool.idempotent || this.parts.config.retry?.nonIdempotent === true;
    try {
      const res = mayRetry ? await this.withRetries(once, signal, deadline) : await once();
      ctx.logger.debug(
        {
          connector: this.name,
          tool: tool.definition.name,
          status: res.status,
          attempts,
          ms: Date.now() - started,
        },
        "rest call answered",
      );
      if (res.status < 200 || res.status >= 300) throw statusError(where, res, this.parts.redactor);
      return this.mapSuccess(where, tool, res);
    } catch (err) {
      const mapped = this.mapFailure(where, err, signal, budgetMs);
      ctx.logger.debug(
        {
          connector: this.name,
          tool: tool.definition.name,
          code: mapped.code,
          attempts,
          ms: Date.now() - started,
        },
        "rest call failed",
      );
      throw mapped;
    } finally {
      dispose();
    }
  }

  /**
   * The first attempt runs bare; only a failure the retry policy would retry builds the policy,
   * which then makes the remaining attempts (most calls succeed at once, and a cockatiel policy per
   * call showed in the gateway's CPU profile).
   */
  private async withRetries(
    once: () => Promise<RawResponse>,
    signal: AbortSignal,
    deadline: number,
  ): Promise<RawResponse> {
    try {
      return await once();
    } catch (err) {
      if (this.retry.maxAttempts <= 1 || !isRetryable(err, deadline) || signal.aborted) throw err;
      await abortableDelay(firstRetryDelay(this.retry, err), signal);
      return retryPolicy(this.retry, deadline, 1).execute(once, signal);
    }
  }

  private baseHeaders(tool: BoundTool, ctx: InvocationContext): Record<string, string> {
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json;q=0.9, text/*;q=0.5, */*;q=0.1",
      "user-agent": USER_AGENT,
      ...(this.parts.config.headers ?? {}),
    };
    if (ctx.traceparent && TRACEPARENT.test(ctx.traceparent)) headers.traceparent = ctx.traceparent;
    const idem = this.parts.config.idempotencyKey;
    if (idem && !tool.idempotent) {
      const header = typeof idem === "object" ? idem.header : DEFAULTS.idempotencyHeader;
      // Same call id → same key on every attempt, so the upstream can drop duplicates.
      headers[header] = createHash("sha256")
        .update(`portcullis:${this.name}:${ctx.callId}`)
        .digest("hex")
        .slice(0, 32);
    }
    return headers;
  }

  /** One request, plus one more with fresh credentials when the upstream answers 401. */
  private async sendWithAuth(where: string, req: PreparedRequest, signal: AbortSignal, budgetMs: number) {
    const send = async (r: PreparedRequest) => {
      await this.parts.auth.apply(r, signal);
      try {
        return await this.parts.transport.send({ ...r, signal });
      } catch (err) {
        throw transportError(
          where,
          err instanceof TransportFailure ? err : classify(err, signal, false),
          budgetMs,
        );
      }
    };
    const pristine = { ...req, url: new URL(req.url.href), headers: { ...req.headers } };
    const res = await send(req);
    if (res.status === 401 && this.parts.auth.renew(req)) return send(pristine);
    if (res.status < 200 || res.status >= 300) {
      const failure = statusError(where, res, this.parts.redactor);
      // Retryable statuses go back through the retry policy; the rest are answers, not failures.
      if (failure.retryable) throw failure;
    }
    return res;
  }

  private mapFailure(where: string, err: unknown, signal: AbortSignal, budgetMs: number): GatewayError {
    if (isGatewayError(err)) return this.scrub(err);
    if (err instanceof TransportFailure) return transportError(where, err, budgetMs);
    if (signal.aborted) return transportError(where, classify(signal.reason, signal, false), budgetMs);
    return new GatewayError("INTERNAL", `${where}: unexpected failure`, {
      cause: new Error(err instanceof Error ? this.parts.redactor.redact(err.message) : "unknown"),
    });
  }

  /** Belt and braces: no message leaves the connector with a credential in it. */
  private scrub(err: GatewayError): GatewayError {
    const message = this.parts.redactor.redact(err.message);
    if (message === err.message) return err;
    const retryable = err instanceof UpstreamFailure ? err.retryable : false;
    return new UpstreamFailure(err.code, message, retryable, {
      ...(err.details ? { details: this.parts.redactor.redactValue(err.details) } : {}),
    });
  }

  private mapSuccess(where: string, tool: BoundTool, res: RawResponse): ToolResult {
    const limit = tool.maxResultBytes ?? this.parts.config.maxResultBytes ?? DEFAULTS.maxResultBytes;
    const decoded = decodeBody(res);
    const redactor = this.parts.redactor;
    switch (decoded.kind) {
      case "binary":
        throw new GatewayError(
          "UPSTREAM_BAD_RESPONSE",
          `${where}: upstream returned binary content (${decoded.contentType}, ${res.body.length} bytes); binary results are not supported`,
        );
      case "invalid-json":
        throw new GatewayError(
          "UPSTREAM_BAD_RESPONSE",
          `${where}: upstream returned invalid JSON (${decoded.reason})`,
        );
      case "text": {
        if (tool.validateAgainst && tool.wrapResult) {
          // A spec may list text and JSON for the same string result (Petstore's loginUser does).
          const structured = { result: redactor.redact(decoded.text) };
          this.check(where, tool, structured);
          return {
            ...textResult(structured.result, limit),
            structuredContent: fit(where, structured, limit),
          };
        }
        if (tool.validateAgainst) {
          throw new GatewayError(
            "UPSTREAM_BAD_RESPONSE",
            `${where}: expected JSON as the spec declares, got ${decoded.contentType}`,
          );
        }
        return textResult(redactor.redact(decoded.text), limit);
      }
      case "empty": {
        const structured = {};
        this.check(where, tool, structured);
        return { structuredContent: structured, text: `HTTP ${res.status} (no content)` };
      }
      case "json": {
        const value = redactor.redactValue(decoded.value);
        let structured: Record<string, unknown>;
        if (tool.project) structured = projectDense(value, tool.project);
        else if (tool.wrapResult || !isPlainObject(value)) structured = { result: value };
        else structured = value;
        this.check(where, tool, structured);
        return { structuredContent: fit(where, structured, limit) };
      }
    }
  }

  /** MCP clients reject structuredContent that breaks the published outputSchema: say so here, clearly. */
  private check(where: string, tool: BoundTool, value: Record<string, unknown>): void {
    if (!tool.validateAgainst) return;
    const validate = this.validator(tool);
    if (!validate || validate(value)) return;
    const first = validate.errors?.[0];
    const at = first ? `${first.instancePath || "/"} ${first.message ?? "is invalid"}` : "does not match";
    throw new GatewayError(
      "UPSTREAM_BAD_RESPONSE",
      `${where}: upstream response does not match the spec's response schema (${at})`,
    );
  }

  private validator(tool: BoundTool): ValidateFunction | null {
    const name = tool.definition.name;
    let fn = this.validators.get(name);
    if (fn !== undefined) return fn;
    this.ajv ??= new Ajv2020({ strict: false, validateFormats: false, allErrors: false });
    try {
      fn = this.ajv.compile(tool.validateAgainst!);
    } catch (err) {
      // A schema Ajv cannot compile is not the caller's problem; log once and stop checking it.
      this.parts.logger.warn(
        { connector: this.name, tool: name, err: err instanceof Error ? err.message : String(err) },
        "response schema not checkable",
      );
      fn = null;
    }
    this.validators.set(name, fn);
    return fn;
  }

  async health(): Promise<Health> {
    if (this.closed) return { ok: false, detail: "closed" };
    const path = this.parts.config.healthPath;
    if (path === undefined)
      return tcpProbe(this.parts.baseUrl, this.parts.config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    const url = new URL(
      `${this.parts.baseUrl.origin}${this.parts.baseUrl.pathname.replace(/\/+$/, "")}${path}`,
    );
    const req: PreparedRequest = { method: "GET", url, headers: { "user-agent": USER_AGENT } };
    // Connect plus a short answer: twice the connect timeout is generous for a health endpoint.
    const signal = AbortSignal.timeout((this.parts.config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs) * 2);
    try {
      await this.parts.auth.apply(req, signal);
      const res = await this.parts.transport.send({ ...req, signal, maxResponseBytes: 64 * 1024 });
      return res.status >= 200 && res.status < 300
        ? { ok: true }
        : { ok: false, detail: `health check answered HTTP ${res.status}` };
    } catch (err) {
      const detail = isGatewayError(err)
        ? err.message
        : err instanceof TransportFailure
          ? err.message
          : "failed";
      return { ok: false, detail: this.parts.redactor.redact(detail) };
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.parts.transport.destroy();
    return Promise.resolve();
  }
}

function fit(where: string, structured: Record<string, unknown>, limit: number): Record<string, unknown> {
  const fitted = shrinkToFit(structured, limit);
  if (!fitted) {
    throw new GatewayError(
      "UPSTREAM_BAD_RESPONSE",
      `${where}: result exceeds ${limit} bytes and cannot be shortened; narrow the request (filters, paging) or configure a projection`,
    );
  }
  return fitted.value;
}

function tcpProbe(base: URL, timeoutMs: number): Promise<Health> {
  const port = Number(base.port || (base.protocol === "https:" ? 443 : 80));
  const host = base.hostname.replace(/^\[|\]$/g, "");
  return new Promise<Health>((resolve) => {
    const socket = connect({ host, port });
    const done = (health: Health) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(health);
    };
    const timer = setTimeout(
      () => done({ ok: false, detail: `connect to ${base.host} timed out` }),
      timeoutMs,
    );
    socket.once("connect", () => done({ ok: true }));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done({ ok: false, detail: `cannot connect to ${base.host} (${err.code ?? "error"})` }),
    );
  });
}

const noop = (): void => {};

/**
 * The call's signal cut to the connector's own budget: aborted with a TimeoutError when the budget
 * runs out (as AbortSignal.timeout would), or with the caller's reason. One controller and one timer,
 * released by `dispose`: AbortSignal.any and AbortSignal.timeout cost several times more per call.
 * When the caller's signal already aborts by the time the budget would end (the gateway's call
 * timer, `ctx.deadline`), it serves as it is: a controller, a timer and a listener fewer per call.
 */
function deadlineSignal(
  ctx: Pick<InvocationContext, "signal" | "deadline">,
  budgetMs: number,
): { signal: AbortSignal; dispose: () => void } {
  const parent = ctx.signal;
  if (ctx.deadline !== undefined && ctx.deadline <= performance.now() + budgetMs) {
    return { signal: parent, dispose: noop };
  }
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(parent.reason);
  const timer = setTimeout(
    () => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
    budgetMs,
  );
  if (parent.aborted) onAbort();
  else parent.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", onAbort);
    },
  };
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
