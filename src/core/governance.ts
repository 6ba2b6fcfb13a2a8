import type { Identity, ObjectJsonSchema, ToolDefinition } from "./types.js";

/** Verifies a bearer token into an Identity. Throws GatewayError UNAUTHENTICATED or FORBIDDEN. */
export interface Authenticator {
  verify(token: string): Promise<Identity>;
}

/**
 * What the scope manifests decide, one method per pipeline stage (ARCHITECTURE.md, steps 2–5).
 * Every method throws a GatewayError with a DENIED_* / APPROVAL_* code to refuse.
 */
export interface CallPolicy {
  /** Step 2: may this identity see (and so call) this tool? Deny by default. */
  canSee(identity: Identity, tool: ToolDefinition): boolean;
  /**
   * Step 3b: the scope's argument constraints, then claim-bound arguments injected (overriding
   * whatever the agent sent). Returns the arguments the connector will receive.
   */
  constrain(identity: Identity, tool: ToolDefinition, args: Record<string, unknown>): Record<string, unknown>;
  /** Step 4: rate limits and budgets. */
  admit(identity: Identity, tool: ToolDefinition, args: Record<string, unknown>): Promise<void>;
  /** Step 5: human approval. Resolves when none is needed or an approval for these exact arguments exists. */
  approve(
    identity: Identity,
    tool: ToolDefinition,
    args: Record<string, unknown>,
    callId: string,
  ): Promise<void>;
  /** Digest of the manifests that granted this tool to this identity, for the audit record. */
  manifestHash(identity: Identity, tool: ToolDefinition): string | undefined;
  /**
   * The input schema this identity sees in tools/list: narrowed enums and bounds, claim-bound
   * arguments removed. Absent means the tool's own schema.
   */
  visibleSchema?(identity: Identity, tool: ToolDefinition): ObjectJsonSchema;
}

export type AuditEventType =
  | "call.intent"
  | "call.outcome"
  | "call.refused"
  | "approval.requested"
  | "approval.approved"
  | "approval.denied"
  | "approval.expired"
  | "admin.change"
  | "admin.refused"
  | "tool.changed";

/** What the gateway hands the audit log. The audit module canonicalises, redacts and chains it. */
export interface AuditEvent {
  readonly type: AuditEventType;
  /** ISO-8601 time the event happened. */
  readonly time: string;
  readonly callId?: string;
  readonly identity?: {
    readonly subject: string;
    readonly clientId?: string;
    readonly issuer?: string;
    readonly scopes: readonly string[];
  };
  readonly connector?: string;
  readonly tool?: string;
  /** Content hash of the tool definition the call ran against. */
  readonly toolHash?: string;
  readonly manifestHash?: string;
  /** Arguments as validated (the audit module redacts them by rule before hashing). */
  readonly arguments?: Readonly<Record<string, unknown>>;
  /** allow | deny, and why. */
  readonly decision?: { readonly allowed: boolean; readonly code?: string; readonly reason?: string };
  readonly outcome?: {
    readonly status: "ok" | "error";
    readonly latencyMs: number;
    readonly resultDigest?: string;
    readonly errorCode?: string;
    readonly errorClass?: string;
  };
  /** Free-form structured detail (admin change digests, approval ids). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface AppendOptions {
  /**
   * Commit without waiting for the rest of this turn of the event loop: the caller knows no other
   * record is about to join this one (a call with no other call in flight), so waiting to group
   * records into one commit would only delay it. Without it, records appended in one turn share a
   * commit (one fsync for many).
   */
  readonly now?: boolean;
  /**
   * No caller waits for this record to be durable (an outcome record whose answer has been sent):
   * its fsync may be left to the next record's for a few milliseconds, so that back-to-back calls
   * pay for one fsync each instead of two. The returned promise still resolves only once it is
   * durable. It is committed as usual, so a crash of the gateway loses nothing; a crash of the
   * machine within that window could.
   */
  readonly unhurried?: boolean;
}

/**
 * The audit log as the gateway sees it. `append` resolves only once the record is durable; a
 * rejection means the record is not written, and for an intent record the call must not run.
 */
export interface AuditSink {
  append(event: AuditEvent, options?: AppendOptions): Promise<void>;
  /**
   * As `append`, but the event is built (and redacted, serialised, hashed) only when the queue is
   * next written: for a record whose preparation need not delay the caller, such as an outcome
   * record queued before its answer is sent. The record joins the queue now, so any read of the
   * log after this call sees it. `build` must capture what it records when it is created (time,
   * latency, policy hashes), not when it runs. Sinks without a queue may omit it.
   */
  appendLater?(build: () => AuditEvent, options?: AppendOptions): Promise<void>;
  close(): Promise<void>;
}
