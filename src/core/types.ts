import type { Logger } from "pino";
import type { z } from "zod";
import type { ResilienceConfig } from "./connector-config.js";

/** A JSON Schema object, as MCP carries it in `inputSchema` / `outputSchema`. */
export type JsonSchema = { [key: string]: unknown };

export interface ObjectJsonSchema extends JsonSchema {
  type: "object";
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

/** MCP tool annotations. Connectors must set them truthfully for each tool. */
export interface ToolAnnotations {
  title?: string;
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/**
 * One tool a connector offers. `name` is the full MCP name `<connector>__<operation>` (build it
 * with `toolName`), `operation` is the connector's own handle for it.
 */
export interface ToolDefinition {
  readonly name: string;
  readonly connector: string;
  readonly operation: string;
  readonly title?: string;
  readonly description: string;
  readonly inputSchema: ObjectJsonSchema;
  readonly outputSchema?: ObjectJsonSchema;
  readonly annotations: ToolAnnotations;
  /**
   * What the tool reaches upstream (URL + method, WSDL endpoint + operation, queue names, SQL
   * text). Part of the tool's content hash, so a changed upstream target is a changed tool.
   */
  readonly upstream?: string;
}

/** A validated call, handed to a connector after every gateway check has passed. */
export interface ToolCall {
  readonly tool: ToolDefinition;
  readonly arguments: Readonly<Record<string, unknown>>;
}

/** Who is calling. The bearer token itself is never kept here: it must not reach an upstream. */
export interface Identity {
  /** `sub` claim, or the configured local identity's name. */
  readonly subject: string;
  /** `client_id` / `azp` claim when present. */
  readonly clientId?: string;
  readonly issuer?: string;
  /** Scope manifest names this identity holds (after claim mapping). */
  readonly scopes: readonly string[];
  /** Verified claims (for claim-bound arguments). */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly source: "jwt" | "local";
}

export interface InvocationContext {
  /** Unique id of this call, shared by logs, traces and audit records. */
  readonly callId: string;
  readonly identity: Identity;
  /** Aborted on timeout, client cancellation or shutdown. Connectors must honour it. */
  readonly signal: AbortSignal;
  /** Time budget for the upstream call, in milliseconds. */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** W3C trace context to propagate upstream, when tracing is on. */
  readonly traceparent?: string;
  /**
   * When set, `signal` aborts by this time (the `performance.now()` clock, in milliseconds): the
   * gateway's own timer for the call. A connector whose own budget would end later can rely on
   * `signal` instead of arming a timer and signal of its own.
   */
  readonly deadline?: number;
}

/**
 * What a connector returns. `structuredContent` is the JSON result (an object, as MCP requires);
 * `text` is an optional human-readable rendering (the gateway falls back to the JSON text).
 * `isError: true` marks an upstream failure the agent can act on; connectors may instead throw a
 * `GatewayError` with an `UPSTREAM_*` code.
 */
export interface ToolResult {
  readonly structuredContent?: Record<string, unknown>;
  readonly text?: string;
  readonly isError?: boolean;
}

export interface Health {
  readonly ok: boolean;
  readonly detail?: string;
}

export interface Connector {
  readonly name: string;
  readonly kind: string;
  tools(): readonly ToolDefinition[];
  invoke(call: ToolCall, ctx: InvocationContext): Promise<ToolResult>;
  health(): Promise<Health>;
  close(): Promise<void>;
}

export interface ConnectorDeps {
  /** Directory connector files live in; relative spec/WSDL/SQL paths resolve against it. */
  readonly baseDir: string;
  readonly logger: Logger;
}

/** The fields every connector file has, whatever its kind. */
export interface ConnectorConfigBase {
  kind: string;
  name: string;
  description?: string | undefined;
  /** Per-call timeout for this connector's upstream, in milliseconds. */
  timeoutMs?: number | undefined;
  required?: boolean | undefined;
  pinTools?: boolean | undefined;
  resilience?: ResilienceConfig | undefined;
}

export interface ConnectorFactory<C extends ConnectorConfigBase = ConnectorConfigBase> {
  readonly kind: string;
  /** Strict zod schema of the whole connector file, including `kind` and `name`. */
  readonly configSchema: z.ZodType<C>;
  create(config: C, deps: ConnectorDeps): Promise<Connector>;
}

/** A factory of any kind, as the registry holds it; configs reach it only after its own schema parsed them. */
export interface AnyConnectorFactory {
  readonly kind: string;
  readonly configSchema: z.ZodType;
  create(config: never, deps: ConnectorDeps): Promise<Connector>;
}
