/**
 * Every error Portcullis raises on purpose carries one of these codes. The code decides who is
 * to blame and what the agent sees: `INVALID_*` and `DENIED_*` blame the request, `UPSTREAM_*`
 * blame a backend condition (so the agent is never told its request was wrong when a database
 * was down), `INTERNAL` blames us. Messages must never contain secrets or stack traces: they
 * reach agents and audit records verbatim.
 */
export const ErrorCodes = {
  /** A config, connector or scope file is malformed or invalid. */
  CONFIG_INVALID: { kind: "config", jsonRpc: -32603, http: 500 },
  /** Unknown tool, or a tool the caller may not see (indistinguishable on purpose). */
  TOOL_NOT_FOUND: { kind: "request", jsonRpc: -32602, http: 404 },
  /** Arguments do not match the tool's input schema. */
  INVALID_ARGUMENTS: { kind: "request", jsonRpc: -32602, http: 400 },
  /** The request itself is malformed (bad cursor, bad session, bad JSON). */
  INVALID_REQUEST: { kind: "request", jsonRpc: -32602, http: 400 },
  /** No or invalid credentials. */
  UNAUTHENTICATED: { kind: "auth", jsonRpc: -32001, http: 401 },
  /** Credentials are valid but do not grant this. */
  FORBIDDEN: { kind: "auth", jsonRpc: -32003, http: 403 },
  /** A scope's argument constraint refused the call. */
  DENIED_CONSTRAINT: { kind: "policy", jsonRpc: -32602, http: 403 },
  /** Rate limit or budget exhausted. */
  DENIED_RATE_LIMIT: { kind: "policy", jsonRpc: -32002, http: 429 },
  /** The call waits for a human approver. */
  APPROVAL_REQUIRED: { kind: "policy", jsonRpc: -32002, http: 202 },
  /** An approver denied the call, or the approval expired. */
  DENIED_APPROVAL: { kind: "policy", jsonRpc: -32002, http: 403 },
  /** The same call repeated too often: the agent is probably stuck in a loop. */
  DENIED_LOOP: { kind: "policy", jsonRpc: -32002, http: 429 },
  /** The audit log could not durably record the call, so it did not run. */
  AUDIT_UNAVAILABLE: { kind: "internal", jsonRpc: -32603, http: 503 },
  /** The backend answered with an error (HTTP 4xx/5xx, SOAP fault, SQL error, MQ reason code). */
  UPSTREAM_ERROR: { kind: "upstream", jsonRpc: -32603, http: 502 },
  /** The backend cannot be reached or its circuit is open. */
  UPSTREAM_UNAVAILABLE: { kind: "upstream", jsonRpc: -32603, http: 503 },
  /** The backend did not answer within the time budget. */
  UPSTREAM_TIMEOUT: { kind: "upstream", jsonRpc: -32603, http: 504 },
  /** The backend's answer was malformed, too large or did not match its schema. */
  UPSTREAM_BAD_RESPONSE: { kind: "upstream", jsonRpc: -32603, http: 502 },
  /** Too many calls in flight for this connector. */
  BUSY: { kind: "upstream", jsonRpc: -32603, http: 503 },
  /** The caller cancelled the call (MCP notifications/cancelled, or the session ended). */
  CANCELLED: { kind: "request", jsonRpc: -32800, http: 499 },
  /** The gateway is shutting down. */
  SHUTTING_DOWN: { kind: "internal", jsonRpc: -32603, http: 503 },
  /** A bug or an unexpected condition on our side. */
  INTERNAL: { kind: "internal", jsonRpc: -32603, http: 500 },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Machine-readable detail safe to show to the agent (field-level violations, retry hints). */
  details?: Record<string, unknown>;
}

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get kind(): (typeof ErrorCodes)[ErrorCode]["kind"] {
    return ErrorCodes[this.code].kind;
  }

  /** True when the condition is the backend's, not the caller's. */
  get isUpstream(): boolean {
    return this.kind === "upstream";
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError;
}

/** Wraps anything thrown into a GatewayError without ever exposing its stack or raw message. */
export function toGatewayError(err: unknown, fallback: ErrorCode = "INTERNAL"): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError(fallback, fallback === "INTERNAL" ? "internal error" : "upstream error", {
    cause: err,
  });
}
