import { hash, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { CallToolResult, ListToolsResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import {
  GatewayError,
  isGatewayError,
  isPlainObject,
  safeJson,
  type AuditEvent,
  type AuditSink,
  type CallPolicy,
  type Identity,
  type ToolResult,
} from "../core/index.js";
import type { Limits } from "../config/schema.js";
import type { ToolRegistry } from "./registry.js";
import { type RegisteredTool } from "./registry.js";
import {
  context,
  contextFromTraceparent,
  inSpan,
  refusalReason,
  SpanKind,
  SpanStatusCode,
  trace,
  traceparentOf,
  tracer,
  type GatewayMetrics,
} from "./telemetry.js";
import { canonicalJson } from "../audit/record.js";
import { validateArguments } from "./validate.js";
import { loopSubject, type LoopGuard, type LoopTicket } from "./loop-guard.js";
import type { Context, Span } from "@opentelemetry/api";

export interface GatewayOptions {
  registry: ToolRegistry;
  policy: CallPolicy;
  audit: AuditSink;
  limits: Limits;
  logger: Logger;
  metrics?: GatewayMetrics;
  /** Record argument values on spans (off by default: arguments may be personal data). */
  traceArguments?: boolean;
  /** Refuses the same call repeated too often (an agent stuck in a loop). */
  loopGuard?: LoopGuard;
  /**
   * Hold each answer until its outcome record is durable (audit.outcomeBeforeAnswer). Off: the
   * outcome record is queued before the answer is sent and committed right after it.
   */
  outcomeBeforeAnswer?: boolean;
}

export interface CallOptions {
  /** Cancelled when the client cancels the request or the session closes. */
  signal?: AbortSignal;
  /** Incoming W3C trace context, propagated upstream. */
  traceparent?: string;
}

export type ToolPage = ListToolsResult;

/** Listeners learn when the registry or policy changes, so sessions can send tools/list_changed. */
export type RegistryListener = (
  previous: { registry: ToolRegistry; policy: CallPolicy },
  next: { registry: ToolRegistry; policy: CallPolicy },
) => void;

const MAX_TOOL_NAME_IN_RECORD = 128;

/** Failures that are not the agent's doing: a retry of the same call is the right move, not a loop. */
const RETRYABLE_CODES = new Set([
  "BUSY",
  "UPSTREAM_UNAVAILABLE",
  "UPSTREAM_TIMEOUT",
  "AUDIT_UNAVAILABLE",
  "SHUTTING_DOWN",
  "CANCELLED",
]);

/**
 * The invocation pipeline, in the order of ARCHITECTURE.md. Every call passes through `callTool`
 * and nowhere else; each stage is a method so the order is visible in one place.
 */
export class Gateway {
  private registryRef: ToolRegistry;
  private policy: CallPolicy;
  private readonly audit: AuditSink;
  private readonly limits: Limits;
  private readonly logger: Logger;
  readonly metrics: GatewayMetrics | undefined;
  private readonly traceArguments: boolean;
  private readonly loopGuard: LoopGuard | undefined;
  private readonly outcomeBeforeAnswer: boolean;
  /** Outcome records queued for answers already sent: drain() and settled() wait for them. */
  private readonly pendingOutcomes = new Set<Promise<void>>();
  private readonly listeners = new Set<RegistryListener>();
  /**
   * What each identity sees, per registry and policy: filtering 10,000 tools on every tools/list
   * page cost more than serialising the page. Keyed by the identity object, so it lives as long
   * as the session holding that identity; a registry or policy swap makes it stale.
   */
  private readonly visibleCache = new WeakMap<
    Identity,
    { registry: ToolRegistry; policy: CallPolicy; tools: readonly RegisteredTool[] }
  >();
  private inFlightCount = 0;
  private drained: (() => void) | undefined;
  private closing = false;

  constructor(options: GatewayOptions) {
    this.registryRef = options.registry;
    this.policy = options.policy;
    this.audit = options.audit;
    this.limits = options.limits;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.traceArguments = options.traceArguments ?? false;
    this.loopGuard = options.loopGuard;
    this.outcomeBeforeAnswer = options.outcomeBeforeAnswer ?? false;
  }

  get registry(): ToolRegistry {
    return this.registryRef;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get currentPolicy(): CallPolicy {
    return this.policy;
  }

  /**
   * Swaps in a new registry (and the policy compiled against it) in one step; calls in flight
   * finish on the definitions they started with.
   */
  setRegistry(next: ToolRegistry, policy: CallPolicy = this.policy): void {
    const previous = { registry: this.registryRef, policy: this.policy };
    this.registryRef = next;
    this.policy = policy;
    for (const listener of this.listeners) listener(previous, { registry: next, policy });
  }

  onRegistryChange(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The tools this identity may see, in name order, one page at a time. */
  listTools(identity: Identity, cursor?: string): ToolPage {
    const visible = this.visibleTools(identity);
    const offset = cursor === undefined ? 0 : decodeCursor(cursor, visible.length);
    const end = Math.min(offset + this.limits.pageSize, visible.length);
    const tools: Tool[] = [];
    for (let i = offset; i < end; i++) tools.push(this.entryFor(identity, visible[i]!));
    return end < visible.length ? { tools, nextCursor: encodeCursor(end) } : { tools };
  }

  /** What this identity sees (names, definition hashes, schemas), for change detection. */
  visibleFingerprint(identity: Identity, state: { registry: ToolRegistry; policy: CallPolicy }): string[] {
    return state.registry.tools
      .filter((t) => state.policy.canSee(identity, t.def))
      .map((t) => {
        const schema = state.policy.visibleSchema?.(identity, t.def);
        return `${t.def.name}@${t.hash}${schema && schema !== t.def.inputSchema ? `:${safeJson(schema).length}:${digest(schema)}` : ""}`;
      });
  }

  async callTool(
    identity: Identity,
    name: string,
    rawArgs: unknown,
    options: CallOptions = {},
  ): Promise<CallToolResult> {
    const callId = randomUUID();
    const shownName = name.slice(0, MAX_TOOL_NAME_IN_RECORD);
    const log = this.logger.child({ callId, tool: shownName, subject: identity.subject });
    if (this.closing) {
      return errorResult(
        new GatewayError("SHUTTING_DOWN", "the gateway is shutting down; retry on another instance"),
      );
    }
    const root = tracer().startSpan(
      "tools/call",
      {
        kind: SpanKind.SERVER,
        attributes: { "mcp.tool": shownName, "portcullis.call_id": callId, "enduser.id": identity.subject },
      },
      contextFromTraceparent(options.traceparent),
    );
    const rootCtx = trace.setSpan(context.active(), root);
    const registry = this.registryRef;
    const policy = this.policy;
    registry.acquire();
    this.inFlightCount++;
    this.metrics?.inFlight.inc();
    const started = performance.now();
    let tool: RegisteredTool | undefined;
    let args: Record<string, unknown> | undefined;
    let loopTicket: LoopTicket | undefined;
    try {
      try {
        await inSpan("authorize", rootCtx, {}, async () => {
          // 1. Identity: resolved by the transport before we get here.
          // 2. Resolve the tool among the tools this identity may see.
          tool = this.resolveTool(registry, policy, identity, name);
          // 3. Arguments: schema, then the scope's constraints and claim-bound arguments.
          args = this.checkArguments(policy, identity, tool, rawArgs);
          // 4. Loop guard, rate limits and budgets.
          loopTicket = this.loopGuard?.check(loopSubject(identity), tool.def.name, args);
          await policy.admit(identity, tool.def, args);
          // 5. Human approval, bound to these exact arguments.
          await policy.approve(identity, tool.def, args, callId);
        });
      } catch (err) {
        const error = toError(err, "INTERNAL");
        // A call refused for another reason must not count towards the loop guard.
        if (error.code !== "DENIED_LOOP") this.loopGuard?.release(loopTicket);
        const known = tool as RegisteredTool | undefined;
        await this.recordRefusal(
          identity,
          callId,
          name,
          known,
          args ?? (isPlainObject(rawArgs) ? rawArgs : undefined),
          error,
          log,
        );
        this.metrics?.refusals.inc({ reason: refusalReason(error.code) });
        root.setAttribute("portcullis.outcome", "refused");
        root.setAttribute("portcullis.error_code", error.code);
        if (error.code === "TOOL_NOT_FOUND" || error.code === "INVALID_REQUEST") throw error;
        log.info({ code: error.code }, "call refused");
        return errorResult(error);
      }
      const target = tool as RegisteredTool;
      const callArgs = args as Record<string, unknown>;
      root.setAttributes({
        "portcullis.connector": target.connector.name,
        "portcullis.connector_kind": target.connector.kind,
      });
      if (this.traceArguments) root.setAttribute("portcullis.arguments", safeJson(callArgs));
      const result = await this.run(identity, callId, target, callArgs, options, log, rootCtx, root, started);
      // Following our own "retry after" advice must not look like a loop.
      const code = (result._meta?.["portcullis/error"] as { code?: string } | undefined)?.code;
      if (code !== undefined && RETRYABLE_CODES.has(code)) this.loopGuard?.release(loopTicket);
      return result;
    } finally {
      root.end();
      registry.release();
      this.finish();
    }
  }

  /** Stages 6–9: the call has passed every check. */
  private async run(
    identity: Identity,
    callId: string,
    tool: RegisteredTool,
    args: Record<string, unknown>,
    options: CallOptions,
    log: Logger,
    rootCtx: Context,
    root: Span,
    started: number,
  ): Promise<CallToolResult> {
    const labels = { connector: tool.connector.name, tool: tool.def.name };
    try {
      // 6. Intent record, durably written; if it cannot be, the call does not run.
      await inSpan("audit.intent", rootCtx, {}, () => this.recordIntent(identity, callId, tool, args, log));
      // 7. Invoke the connector.
      const upstreamStarted = performance.now();
      const result = await inSpan(
        "upstream",
        rootCtx,
        {
          "portcullis.connector": tool.connector.name,
          "portcullis.connector_kind": tool.connector.kind,
          "portcullis.operation": tool.def.operation,
        },
        (span) =>
          this.invoke(
            identity,
            callId,
            tool,
            args,
            { ...options, traceparent: traceparentOf(span) ?? options.traceparent },
            log,
          ),
        SpanKind.CLIENT,
      ).finally(() =>
        this.metrics?.upstreamSeconds.observe(labels, (performance.now() - upstreamStarted) / 1000),
      );
      // 8. Outcome record. 9. Map the result.
      const { mapped, digestJson } = this.mapResult(tool, result);
      const isError = mapped.isError === true;
      const outcome = isError ? "error" : "ok";
      await this.settleOutcome(
        inSpan("audit.outcome", rootCtx, {}, () =>
          this.recordOutcome(identity, callId, tool, started, outcome, log, () => ({
            resultDigest: digestOfJson(digestJson),
            ...(isError ? { errorCode: "UPSTREAM_ERROR" } : {}),
          })),
        ),
      );
      this.metrics?.calls.inc({ ...labels, outcome });
      root.setAttribute("portcullis.outcome", outcome);
      if (isError) root.setStatus({ code: SpanStatusCode.ERROR, message: "UPSTREAM_ERROR" });
      // Logged once the answer is on its way (the next turn of the event loop): formatting and
      // redacting a line is time the agent need not wait for.
      const latencyMs = Math.round(performance.now() - started);
      setImmediate(() => log.info({ latencyMs, isError }, "call done"));
      return mapped;
    } catch (err) {
      const error = toError(err, "INTERNAL");
      if (error.code === "AUDIT_UNAVAILABLE") {
        this.metrics?.refusals.inc({ reason: "audit" });
      } else {
        await this.settleOutcome(
          this.recordOutcome(identity, callId, tool, started, "error", log, () => ({
            errorCode: error.code,
            errorClass: error.kind,
          })),
        );
        this.metrics?.calls.inc({ ...labels, outcome: "error" });
      }
      root.setAttribute("portcullis.outcome", error.code === "AUDIT_UNAVAILABLE" ? "refused" : "error");
      root.setAttribute("portcullis.error_code", error.code);
      root.setStatus({ code: SpanStatusCode.ERROR, message: error.code });
      if (error.code === "INTERNAL") log.error({ err: error.cause ?? error }, "call failed");
      else log.info({ code: error.code }, "call failed");
      return errorResult(error, callId);
    } finally {
      this.metrics?.callSeconds.observe(labels, (performance.now() - started) / 1000);
    }
  }

  /** Refuses new calls and waits up to `timeoutMs` for calls in flight; true when all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.closing = true;
    if (this.inFlightCount === 0) {
      await this.settled();
      return true;
    }
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const ok = await Promise.race([done.then(() => true), timedOut]);
    clearTimeout(timer);
    if (ok) await this.settled();
    return ok;
  }

  /**
   * Resolves once every outcome record queued so far is durable (or its failure was logged).
   * Answers do not wait for their outcome records unless audit.outcomeBeforeAnswer is set.
   */
  async settled(): Promise<void> {
    while (this.pendingOutcomes.size > 0) await Promise.allSettled([...this.pendingOutcomes]);
  }

  /**
   * Stage 8's wait. The intent record already gates the upstream (stage 6) and a failed outcome
   * record never changes the answer (recordOutcome), so by default the answer is not held for
   * this second fsync: the record is queued before the answer is sent and committed right after.
   */
  private async settleOutcome(recorded: Promise<void>): Promise<void> {
    if (this.outcomeBeforeAnswer) return recorded;
    const tracked = recorded.catch(() => undefined);
    this.pendingOutcomes.add(tracked);
    void tracked.finally(() => this.pendingOutcomes.delete(tracked));
  }

  // --- stages -------------------------------------------------------------------------------

  private visibleTools(identity: Identity): readonly RegisteredTool[] {
    const registry = this.registryRef;
    const policy = this.policy;
    const cached = this.visibleCache.get(identity);
    if (cached && cached.registry === registry && cached.policy === policy) return cached.tools;
    const tools = registry.tools.filter((t) => policy.canSee(identity, t.def));
    this.visibleCache.set(identity, { registry, policy, tools });
    return tools;
  }

  private entryFor(identity: Identity, tool: RegisteredTool): Tool {
    const schema = this.policy.visibleSchema?.(identity, tool.def);
    return schema && schema !== tool.def.inputSchema
      ? { ...tool.listEntry, inputSchema: schema }
      : tool.listEntry;
  }

  private resolveTool(
    registry: ToolRegistry,
    policy: CallPolicy,
    identity: Identity,
    name: string,
  ): RegisteredTool {
    const tool = registry.get(name);
    // Unknown and hidden tools get the very same error: a hidden tool's existence never leaks.
    if (!tool || !policy.canSee(identity, tool.def)) {
      throw new GatewayError("TOOL_NOT_FOUND", `unknown tool: ${name.slice(0, MAX_TOOL_NAME_IN_RECORD)}`);
    }
    return tool;
  }

  private checkArguments(
    policy: CallPolicy,
    identity: Identity,
    tool: RegisteredTool,
    rawArgs: unknown,
  ): Record<string, unknown> {
    const args = rawArgs ?? {};
    const visible = policy.visibleSchema?.(identity, tool.def) ?? tool.def.inputSchema;
    // The agent is validated against the schema it was shown (claim-bound arguments are absent
    // from it); after the policy injected those, the final arguments must fit the tool's own schema.
    validateArguments(visible, args, tool.def.name);
    const constrained = policy.constrain(identity, tool.def, args as Record<string, unknown>);
    if (visible !== tool.def.inputSchema) validateArguments(tool.def.inputSchema, constrained, tool.def.name);
    return constrained;
  }

  private async invoke(
    identity: Identity,
    callId: string,
    tool: RegisteredTool,
    args: Record<string, unknown>,
    options: CallOptions,
    log: Logger,
  ): Promise<ToolResult> {
    const controller = new AbortController();
    const timeoutMs = tool.timeoutMs;
    const onAbort = (): void => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const deadline = performance.now() + timeoutMs;
    // The budget's end aborts the call with its own reason, so one listener settles both ways out.
    const timer = setTimeout(() => {
      controller.abort(
        new GatewayError(
          "UPSTREAM_TIMEOUT",
          `connector "${tool.connector.name}" (${tool.connector.kind}) did not answer within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const stopped = new Promise<never>((_, reject) => {
      controller.signal.addEventListener(
        "abort",
        () =>
          reject(
            isGatewayError(controller.signal.reason)
              ? controller.signal.reason
              : new GatewayError("CANCELLED", "the call was cancelled by the client"),
          ),
        { once: true },
      );
    });
    try {
      const call = { tool: tool.def, arguments: args };
      const ctx = (signal: AbortSignal) => ({
        callId,
        identity,
        signal,
        timeoutMs,
        deadline,
        logger: log,
        ...(options.traceparent ? { traceparent: options.traceparent } : {}),
      });
      // The bulkhead and breakers wrap only the upstream call; the timer above covers queueing too.
      const work = tool.guard
        ? tool.guard.execute(
            tool.def.name,
            (signal) => tool.connector.invoke(call, ctx(signal)),
            controller.signal,
          )
        : tool.connector.invoke(call, ctx(controller.signal));
      // A connector that ignores its signal must not hold the agent past the budget.
      work.catch(() => undefined);
      return await Promise.race([work, stopped]);
    } catch (err) {
      throw toError(err, "UPSTREAM_ERROR", tool);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The agent-facing result, and the JSON its digest is computed over (the structured content, or
   * the content), serialised once: a result can be large and is otherwise serialised up to three times.
   */
  private mapResult(
    tool: RegisteredTool,
    result: ToolResult,
  ): { mapped: CallToolResult; digestJson: string } {
    const structured = result.structuredContent;
    const structuredJson = structured === undefined ? undefined : safeJson(structured);
    const text = result.text ?? structuredJson ?? "";
    const size =
      Buffer.byteLength(text) +
      (structuredJson !== undefined && result.text !== undefined ? Buffer.byteLength(structuredJson) : 0);
    if (size > this.limits.maxResultBytes) {
      throw new GatewayError(
        "UPSTREAM_BAD_RESPONSE",
        `the result of ${tool.def.name} is ${size} bytes, over the gateway's limit of ${this.limits.maxResultBytes}; narrow the request (filters, fewer rows)`,
      );
    }
    const out: CallToolResult = { content: [{ type: "text", text }] };
    if (result.isError) {
      out.isError = true;
      // An error's shape need not match the tool's outputSchema, so clients must not validate it.
      if (structured !== undefined && tool.def.outputSchema === undefined) out.structuredContent = structured;
    } else if (structured !== undefined) {
      out.structuredContent = structured;
    }
    const digestJson =
      out.structuredContent !== undefined && structuredJson !== undefined
        ? structuredJson
        : safeJson(out.content);
    return { mapped: out, digestJson };
  }

  // --- audit --------------------------------------------------------------------------------

  private baseEvent(
    identity: Identity,
    callId: string,
    tool: RegisteredTool,
  ): Omit<AuditEvent, "type" | "time"> {
    const manifestHash = this.policy.manifestHash(identity, tool.def);
    return {
      callId,
      identity: auditIdentity(identity),
      connector: tool.connector.name,
      tool: tool.def.name,
      toolHash: tool.hash,
      ...(manifestHash ? { manifestHash } : {}),
    };
  }

  private async recordIntent(
    identity: Identity,
    callId: string,
    tool: RegisteredTool,
    args: Record<string, unknown>,
    log: Logger,
  ): Promise<void> {
    const t0 = performance.now();
    try {
      await this.audit.append(
        {
          type: "call.intent",
          time: new Date().toISOString(),
          ...this.baseEvent(identity, callId, tool),
          arguments: args,
          decision: { allowed: true },
        },
        // The only call in flight: no other record can join this commit, so do not wait for one.
        { now: this.inFlightCount === 1 },
      );
      this.metrics?.auditAppendSeconds.observe({ type: "intent" }, (performance.now() - t0) / 1000);
    } catch (err) {
      log.error({ err }, "audit intent record could not be written: call refused");
      throw new GatewayError(
        "AUDIT_UNAVAILABLE",
        "the call was refused and did not run: the audit log cannot record it right now; retry later or contact the operator",
        { cause: err },
      );
    }
  }

  private async recordOutcome(
    identity: Identity,
    callId: string,
    tool: RegisteredTool,
    started: number,
    status: "ok" | "error",
    log: Logger,
    extra: () => { resultDigest?: string; errorCode?: string; errorClass?: string },
  ): Promise<void> {
    // Time, latency and the manifest hash are taken now; digesting the result, redacting and
    // serialising the record wait for the queue's write, after the answer is sent (appendLater).
    const time = new Date().toISOString();
    const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
    const base = this.baseEvent(identity, callId, tool);
    const build = (): AuditEvent => ({
      type: "call.outcome",
      time,
      ...base,
      outcome: { status, latencyMs, ...extra() },
    });
    try {
      // Unless the answer waits for it, nobody waits for this record's fsync (see AppendOptions).
      const options = { unhurried: !this.outcomeBeforeAnswer };
      await (this.audit.appendLater
        ? this.audit.appendLater(build, options)
        : this.audit.append(build(), options));
    } catch (err) {
      // The call already ran; failing it now would invite a duplicate retry. Alert instead.
      log.error({ err }, "audit outcome record could not be written");
    }
  }

  private async recordRefusal(
    identity: Identity,
    callId: string,
    name: string,
    tool: RegisteredTool | undefined,
    args: Record<string, unknown> | undefined,
    error: GatewayError,
    log: Logger,
  ): Promise<void> {
    try {
      await this.audit.append({
        type: "call.refused",
        time: new Date().toISOString(),
        ...(tool
          ? this.baseEvent(identity, callId, tool)
          : { callId, identity: auditIdentity(identity), tool: name.slice(0, MAX_TOOL_NAME_IN_RECORD) }),
        // Arguments of a call to an unknown or hidden tool are not recorded: they were never checked.
        ...(tool && args ? { arguments: args } : {}),
        decision: { allowed: false, code: error.code, reason: error.message },
      });
    } catch (err) {
      log.error({ err }, "audit refusal record could not be written");
    }
  }

  private finish(): void {
    this.inFlightCount--;
    this.metrics?.inFlight.dec();
    if (this.inFlightCount === 0 && this.drained) this.drained();
  }
}

function auditIdentity(identity: Identity): NonNullable<AuditEvent["identity"]> {
  return {
    subject: identity.subject,
    scopes: identity.scopes,
    ...(identity.clientId ? { clientId: identity.clientId } : {}),
    ...(identity.issuer ? { issuer: identity.issuer } : {}),
  };
}

function digest(value: unknown): string {
  return digestOfJson(safeJson(value ?? null));
}

/**
 * SHA-256 of the RFC 8785 form of a JSON text. JSON.parse output is plain JSON, which the audit
 * log's serialiser renders exactly as the canonicalize package does, only faster; one-shot
 * hashing skips a Hash object per call.
 */
function digestOfJson(json: string): string {
  return `sha256:${hash("sha256", canonicalJson(JSON.parse(json)))}`;
}

function toError(err: unknown, fallback: "INTERNAL" | "UPSTREAM_ERROR", tool?: RegisteredTool): GatewayError {
  if (isGatewayError(err)) return err;
  if (fallback === "UPSTREAM_ERROR" && tool) {
    // A connector let a raw error escape: its message may hold anything, so it is logged, not shown.
    return new GatewayError(
      "UPSTREAM_ERROR",
      `connector "${tool.connector.name}" (${tool.connector.kind}) failed unexpectedly`,
      { cause: err },
    );
  }
  return new GatewayError("INTERNAL", "internal error", { cause: err });
}

/** The agent-facing rendering of a refusal or failure: a code it can branch on and a message it can act on. */
export function errorResult(error: GatewayError, callId?: string): CallToolResult {
  const suffix = error.code === "INTERNAL" && callId ? ` (call id ${callId})` : "";
  const result: CallToolResult = {
    content: [{ type: "text", text: `${error.code}: ${error.message}${suffix}` }],
    isError: true,
  };
  // The code, machine-readable, for agents that branch on it (and for the loop guard).
  result._meta = { "portcullis/error": { code: error.code, ...error.details } };
  return result;
}

const CURSOR_PREFIX = "pc1:";

function encodeCursor(offset: number): string {
  return Buffer.from(`${CURSOR_PREFIX}${offset}`).toString("base64url");
}

function decodeCursor(cursor: string, total: number): number {
  const text = cursor.length <= 64 ? Buffer.from(cursor, "base64url").toString("utf8") : "";
  const offset = text.startsWith(CURSOR_PREFIX) ? Number(text.slice(CURSOR_PREFIX.length)) : NaN;
  if (!Number.isSafeInteger(offset) || offset <= 0 || offset > total) {
    throw new GatewayError(
      "INVALID_REQUEST",
      "invalid cursor: pass back the nextCursor of a previous tools/list",
    );
  }
  return offset;
}
