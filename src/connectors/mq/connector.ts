import type { ValidateFunction } from "ajv";
import {
  GatewayError,
  isPlainObject,
  safeJson,
  toolName,
  type Connector,
  type ConnectorDeps,
  type Health,
  type InvocationContext,
  type ObjectJsonSchema,
  type ToolCall,
  type ToolDefinition,
  type ToolResult,
} from "../../core/index.js";
import { AmqpTransport } from "./amqp-transport.js";
import { MqBridge, type BridgeStats } from "./bridge.js";
import { MQ_DEFAULTS, type MqConfig, type MqToolConfig } from "./config.js";
import type { IbmMqLoader } from "./ibmmq-api.js";
import { IbmMqTransport } from "./ibmmq-transport.js";
import { createAjv, formatViolations, violations } from "./json-schema.js";
import { GET_REPLY_OPERATION } from "./names.js";
import type { MqTransport } from "./transport.js";
import { createCodec, type WireCodec } from "./wire-format.js";

/** Seams for tests only; production passes none (see createMqConnector). */
export interface MqConnectorOverrides {
  /** Replaces `import("ibmmq")`. Tests inject a stand-in here; no config field can reach it. */
  readonly ibmmqLoader?: IbmMqLoader;
}

interface CompiledTool {
  readonly config: MqToolConfig;
  readonly definition: ToolDefinition;
  readonly codec: WireCodec;
  readonly validateReply: ValidateFunction;
}

/** Longest a get_reply call may wait for a late reply, in ms. */
const MAX_FETCH_WAIT_MS = 30_000;
/** Headroom between a pending tool's wait budget and the gateway's own call timeout, in ms. */
const PENDING_HEADROOM_MS = 250;

export async function createMqConnector(
  config: MqConfig,
  deps: ConnectorDeps,
  overrides: MqConnectorOverrides = {},
): Promise<MqConnector> {
  const connector = new MqConnector(config, deps, overrides);
  await connector.start();
  return connector;
}

export class MqConnector implements Connector {
  readonly kind = "mq";
  readonly name: string;
  private readonly label: string;
  private readonly config: MqConfig;
  private readonly byName = new Map<string, CompiledTool>();
  private readonly byOperation = new Map<string, CompiledTool>();
  private readonly definitions: ToolDefinition[] = [];
  private readonly getReply: ToolDefinition | undefined;
  private readonly bridge: MqBridge;
  private readonly deps: ConnectorDeps;

  constructor(config: MqConfig, deps: ConnectorDeps, overrides: MqConnectorOverrides = {}) {
    this.config = config;
    this.deps = deps;
    this.name = config.name;
    this.label = `connector "${config.name}" (mq, ${config.transport.type})`;
    const strictAjv = createAjv(false);
    const coercingAjv = createAjv(true);
    for (const t of config.tools) {
      const definition = this.define(t);
      const codec = createCodec(t.format, t.replySchema, `${this.label} tool ${t.name}`);
      let validateReply: ValidateFunction;
      try {
        validateReply = (codec.textual ? coercingAjv : strictAjv).compile(t.replySchema);
      } catch (err) {
        throw new GatewayError(
          "CONFIG_INVALID",
          `${this.label}: tool ${t.name}: replySchema does not compile`,
          { cause: err },
        );
      }
      const compiled: CompiledTool = { config: t, definition, codec, validateReply };
      this.byName.set(definition.name, compiled);
      this.byOperation.set(t.name, compiled);
      this.definitions.push(definition);
    }
    if (config.tools.some((t) => t.onTimeout === "pending")) {
      this.getReply = this.defineGetReply();
      this.definitions.push(this.getReply);
    }
    const logger = deps.logger.child({ connector: config.name, kind: "mq" });
    const fixedReplyQueues = [
      ...new Set(config.tools.flatMap((t) => (t.replyQueue === undefined ? [] : [t.replyQueue]))),
    ];
    const maxInFlight = config.maxInFlight ?? MQ_DEFAULTS.maxInFlight;
    let transport: MqTransport;
    if (config.transport.type === "amqp") {
      transport = new AmqpTransport({
        label: this.label,
        config: config.transport,
        fixedReplyQueues,
        prefetch: Math.min(65_535, maxInFlight * 2),
        connectTimeoutMs: config.transport.connectTimeoutMs ?? MQ_DEFAULTS.connectTimeoutMs,
        logger,
      });
    } else {
      transport = new IbmMqTransport({
        label: this.label,
        config: config.transport,
        requestQueues: [...new Set(config.tools.map((t) => t.requestQueue))],
        fixedReplyQueues,
        usesTemporaryReplyQueue: config.tools.some((t) => t.replyQueue === undefined),
        logger,
        ...(overrides.ibmmqLoader ? { loader: overrides.ibmmqLoader } : {}),
      });
    }
    this.bridge = new MqBridge({
      label: this.label,
      transport,
      logger,
      maxInFlight,
      maxReplyBytes: config.maxReplyBytes ?? MQ_DEFAULTS.maxReplyBytes,
      lateReplyTtlMs: config.lateReplies?.ttlMs ?? MQ_DEFAULTS.lateReplyTtlMs,
      lateReplyMaxEntries: config.lateReplies?.maxEntries ?? MQ_DEFAULTS.lateReplyMaxEntries,
      reconnectInitialDelayMs: config.reconnect?.initialDelayMs ?? MQ_DEFAULTS.reconnectInitialDelayMs,
      reconnectMaxDelayMs: config.reconnect?.maxDelayMs ?? MQ_DEFAULTS.reconnectMaxDelayMs,
    });
  }

  start(): Promise<void> {
    return this.bridge.start();
  }

  tools(): readonly ToolDefinition[] {
    return this.definitions;
  }

  async invoke(call: ToolCall, ctx: InvocationContext): Promise<ToolResult> {
    if (this.getReply && call.tool.name === this.getReply.name) return this.fetch(call, ctx);
    const tool = this.byName.get(call.tool.name);
    if (!tool) throw new GatewayError("TOOL_NOT_FOUND", `${this.label}: no tool ${call.tool.name}`);
    const t = tool.config;
    const pending = t.onTimeout === "pending";
    const configured = t.waitMs ?? this.config.timeoutMs ?? ctx.timeoutMs;
    const waitMs = Math.max(
      1,
      Math.min(configured, pending ? ctx.timeoutMs - PENDING_HEADROOM_MS : ctx.timeoutMs),
    );
    const lateTtl = this.config.lateReplies?.ttlMs ?? MQ_DEFAULTS.lateReplyTtlMs;
    const body = tool.codec.encode(call.arguments);
    const outcome = await this.bridge.request(
      {
        operation: t.name,
        requestQueue: t.requestQueue,
        replyQueue: t.replyQueue,
        body,
        contentType: tool.codec.contentType,
        charset: tool.codec.charset,
        // A request nobody waits for any more should not run later (see docs: expiryMs).
        expiryMs: t.expiryMs ?? (pending ? waitMs + lateTtl : waitMs),
        persistent: t.persistent ?? false,
        priority: t.priority,
        traceparent: ctx.traceparent,
        callId: ctx.callId,
      },
      { waitMs, pendingOnTimeout: pending, subject: ctx.identity.subject, signal: ctx.signal },
    );
    if (outcome.status === "pending") {
      const fetchWith = this.getReply!.name;
      return {
        structuredContent: {
          status: "pending",
          requestId: outcome.id,
          fetchWith,
          expiresAt: new Date(outcome.expiresAt).toISOString(),
        },
        text: `No reply to ${t.name} within ${waitMs} ms; the request is still being processed. Call ${fetchWith} with {"requestId": "${outcome.id}"} to fetch the reply (kept until ${new Date(outcome.expiresAt).toISOString()}).`,
      };
    }
    return this.answer(tool, outcome.body);
  }

  async health(): Promise<Health> {
    return this.bridge.health();
  }

  /** Counters for metrics and tests: in flight, pending, late/duplicate/unknown replies dropped. */
  stats(): BridgeStats {
    return this.bridge.stats();
  }

  close(): Promise<void> {
    return this.bridge.close();
  }

  private async fetch(call: ToolCall, ctx: InvocationContext): Promise<ToolResult> {
    const requestId = call.arguments.requestId;
    if (typeof requestId !== "string" || requestId === "") {
      throw new GatewayError("INVALID_ARGUMENTS", `${this.label}: requestId must be a non-empty string`);
    }
    const rawWait = call.arguments.waitMs;
    const waitMs =
      typeof rawWait === "number" && Number.isFinite(rawWait)
        ? Math.max(0, Math.min(rawWait, MAX_FETCH_WAIT_MS, ctx.timeoutMs - PENDING_HEADROOM_MS))
        : 0;
    const outcome = await this.bridge.fetch(requestId, ctx.identity.subject, waitMs, ctx.signal);
    const tool = this.byOperation.get(outcome.operation);
    if (!tool) throw new GatewayError("INTERNAL", `${this.label}: pending request for unknown operation`);
    if (outcome.status === "pending") {
      return {
        structuredContent: {
          status: "pending",
          requestId,
          expiresAt: new Date(outcome.expiresAt).toISOString(),
        },
        text: `No reply yet to ${tool.config.name} (request ${requestId}); try again later.`,
      };
    }
    return this.answer(tool, outcome.body);
  }

  /** Decodes and validates a reply; a schema mismatch is an isError result that says what differed. */
  private answer(tool: CompiledTool, body: Buffer): ToolResult {
    const reply = tool.codec.decode(body);
    if (!tool.validateReply(reply)) {
      const list = violations(tool.validateReply.errors);
      const message = `${this.label}: reply to ${tool.config.name} does not match its reply schema: ${formatViolations(list)}`;
      this.deps.logger.warn(
        { connector: this.name, tool: tool.config.name, violations: list },
        "mq reply schema mismatch",
      );
      return {
        isError: true,
        text: message,
        structuredContent: { error: { code: "UPSTREAM_BAD_RESPONSE", message, violations: list } },
      };
    }
    return { structuredContent: reply, text: safeJson(reply) };
  }

  private define(t: MqToolConfig): ToolDefinition {
    const name = toolName(this.config.name, t.name);
    const a = t.annotations ?? {};
    const readOnly = a.readOnlyHint ?? false;
    const replyTarget = t.replyQueue ?? "(temporary queue)";
    return {
      name,
      connector: this.config.name,
      operation: t.name,
      ...(t.title === undefined ? {} : { title: t.title }),
      description:
        t.onTimeout === "pending"
          ? `${t.description}\n\nIf the reply takes longer than the wait budget, this returns {"status":"pending","requestId":...}; fetch the reply with ${toolName(this.config.name, GET_REPLY_OPERATION)}.`
          : t.description,
      inputSchema: t.requestSchema as ObjectJsonSchema,
      // A pending tool answers either the reply or a pending marker, so it declares no output schema.
      ...(t.onTimeout === "pending" || !isPlainObject(t.replySchema)
        ? {}
        : { outputSchema: t.replySchema as ObjectJsonSchema }),
      annotations: {
        ...(t.title === undefined ? {} : { title: t.title }),
        readOnlyHint: readOnly,
        destructiveHint: readOnly ? false : (a.destructiveHint ?? true),
        idempotentHint: a.idempotentHint ?? readOnly,
        openWorldHint: a.openWorldHint ?? false,
      },
      upstream: `${this.config.transport.type} request ${t.requestQueue} reply ${replyTarget} format ${t.format.type}`,
    };
  }

  private defineGetReply(): ToolDefinition {
    return {
      name: toolName(this.config.name, GET_REPLY_OPERATION),
      connector: this.config.name,
      operation: GET_REPLY_OPERATION,
      title: "Fetch a late reply",
      description: `Returns the reply to a request that answered {"status":"pending"}: the reply itself once it has arrived, or {"status":"pending"} while it has not. Replies are kept ${Math.round((this.config.lateReplies?.ttlMs ?? MQ_DEFAULTS.lateReplyTtlMs) / 1000)} s and can be fetched once, only by the caller that sent the request.`,
      inputSchema: {
        type: "object",
        properties: {
          requestId: {
            type: "string",
            minLength: 1,
            maxLength: 64,
            description: "requestId from the pending result",
          },
          waitMs: {
            type: "integer",
            minimum: 0,
            maximum: MAX_FETCH_WAIT_MS,
            description: "Wait up to this long for the reply to arrive (default 0: answer at once)",
          },
        },
        required: ["requestId"],
        additionalProperties: false,
      },
      annotations: {
        title: "Fetch a late reply",
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
      upstream: `${this.config.transport.type} late-reply store`,
    };
  }
}
