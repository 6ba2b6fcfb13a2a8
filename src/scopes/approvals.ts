import { createHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import canonicalize from "canonicalize";
import type { Logger } from "pino";
import { GatewayError, type AuditEvent, type AuditSink, type Identity } from "../core/index.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "consumed";

export interface ApprovalRecord {
  readonly id: string;
  readonly status: ApprovalStatus;
  /** SHA-256 of the canonical (RFC 8785) identity + tool + exact arguments the approval is bound to. */
  readonly requestHash: string;
  readonly requester: {
    readonly subject: string;
    readonly issuer?: string;
    readonly scopes: readonly string[];
  };
  readonly tool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  /** The condition that fired, e.g. `amount > 200.00`. */
  readonly rule: string;
  readonly reason?: string;
  /** Scope whose rule asked for approval. */
  readonly scope: string;
  readonly callId: string;
  readonly createdAt: string;
  /** Pending: when the request lapses. Approved: when the approval lapses unused. Denied: until when the denial stands. */
  readonly expiresAt: string;
  readonly decidedBy?: { readonly subject: string; readonly issuer?: string };
  readonly decidedAt?: string;
  readonly note?: string;
  readonly consumedAt?: string;
  readonly consumedCallId?: string;
}

export interface ApprovalRequest {
  readonly identity: Identity;
  readonly tool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly rule: string;
  readonly reason?: string;
  readonly scope: string;
  readonly callId: string;
}

export interface ApprovalStoreOptions {
  /** SQLite file; created with its directory when missing. */
  file: string;
  /** How long a request waits, and how long an approval or denial stands, in milliseconds. */
  ttlMs: number;
  /** Scope an identity needs to approve or deny. */
  approverScope: string;
  /** Open requests one identity may have at once (a stuck agent must not flood the queue). */
  maxPendingPerIdentity?: number;
  logger: Logger;
  /** Receives approval.* events; failures are logged, the approval state is authoritative. */
  audit?: AuditSink;
  now?: () => number;
}

interface Row {
  id: string;
  status: ApprovalStatus;
  request_hash: string;
  requester_subject: string;
  requester_issuer: string;
  requester_scopes: string;
  tool: string;
  arguments: string;
  rule: string;
  reason: string | null;
  scope: string;
  call_id: string;
  created_at: number;
  expires_at: number;
  decided_by: string | null;
  decided_by_issuer: string | null;
  decided_at: number | null;
  note: string | null;
  consumed_at: number | null;
  consumed_call_id: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
  request_hash TEXT NOT NULL,
  requester_subject TEXT NOT NULL,
  requester_issuer TEXT NOT NULL,
  requester_scopes TEXT NOT NULL,
  tool TEXT NOT NULL,
  arguments TEXT NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT,
  scope TEXT NOT NULL,
  call_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  decided_by TEXT,
  decided_by_issuer TEXT,
  decided_at INTEGER,
  note TEXT,
  consumed_at INTEGER,
  consumed_call_id TEXT
);
CREATE INDEX IF NOT EXISTS approvals_by_hash ON approvals (request_hash, created_at);
CREATE INDEX IF NOT EXISTS approvals_by_status ON approvals (status, created_at);
CREATE INDEX IF NOT EXISTS approvals_by_requester ON approvals (requester_issuer, requester_subject, status);
`;

const MAX_NOTE_CHARS = 1000;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function toRecord(r: Row): ApprovalRecord {
  return {
    id: r.id,
    status: r.status,
    requestHash: r.request_hash,
    requester: {
      subject: r.requester_subject,
      ...(r.requester_issuer ? { issuer: r.requester_issuer } : {}),
      scopes: JSON.parse(r.requester_scopes) as string[],
    },
    tool: r.tool,
    arguments: JSON.parse(r.arguments) as Record<string, unknown>,
    rule: r.rule,
    ...(r.reason ? { reason: r.reason } : {}),
    scope: r.scope,
    callId: r.call_id,
    createdAt: iso(r.created_at),
    expiresAt: iso(r.expires_at),
    ...(r.decided_by
      ? {
          decidedBy: {
            subject: r.decided_by,
            ...(r.decided_by_issuer ? { issuer: r.decided_by_issuer } : {}),
          },
        }
      : {}),
    ...(r.decided_at !== null ? { decidedAt: iso(r.decided_at) } : {}),
    ...(r.note ? { note: r.note } : {}),
    ...(r.consumed_at !== null ? { consumedAt: iso(r.consumed_at) } : {}),
    ...(r.consumed_call_id ? { consumedCallId: r.consumed_call_id } : {}),
  };
}

/** The hash an approval is bound to: who, which tool, and exactly which arguments. */
export function approvalRequestHash(
  identity: Identity,
  tool: string,
  args: Readonly<Record<string, unknown>>,
): string {
  const text = canonicalize({
    issuer: identity.issuer ?? "",
    subject: identity.subject,
    tool,
    arguments: args,
  });
  if (text === undefined) throw new GatewayError("INTERNAL", `cannot canonicalise the arguments of ${tool}`);
  return createHash("sha256").update(text).digest("hex");
}

function canonicalArgs(args: Readonly<Record<string, unknown>>): string {
  return canonicalize(args) ?? "{}";
}

type Outcome =
  | { kind: "run"; record: ApprovalRecord }
  | { kind: "pending"; record: ApprovalRecord; created: boolean }
  | { kind: "denied"; record: ApprovalRecord }
  | { kind: "expired"; record: ApprovalRecord };

/**
 * Human approvals in SQLite (WAL, synchronous=FULL), so pending requests and decisions survive a
 * restart and several processes (the server and the `approvals` CLI) can share one file.
 */
export class ApprovalStore {
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly maxPending: number;
  private closed = false;

  private constructor(private readonly opts: ApprovalStoreOptions) {
    this.now = opts.now ?? Date.now;
    this.maxPending = opts.maxPendingPerIdentity ?? 100;
    mkdirSync(dirname(opts.file), { recursive: true });
    this.db = new Database(opts.file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
  }

  static open(opts: ApprovalStoreOptions): ApprovalStore {
    try {
      return new ApprovalStore(opts);
    } catch (err) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `cannot open the approval store ${opts.file}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  get approverScope(): string {
    return this.opts.approverScope;
  }

  /**
   * Resolves when an approval for exactly this call exists (and consumes it: it runs once).
   * Otherwise throws APPROVAL_REQUIRED (a pending request, created if needed) or DENIED_APPROVAL.
   */
  async require(req: ApprovalRequest): Promise<ApprovalRecord> {
    const outcome = this.evaluate(req);
    const r = outcome.record;
    switch (outcome.kind) {
      case "run":
        return r;
      case "pending":
        if (outcome.created) await this.emit("approval.requested", r, req.identity);
        throw new GatewayError(
          "APPROVAL_REQUIRED",
          `call to ${req.tool} needs human approval (${r.reason ? `${r.reason}; ` : ""}rule: ${r.rule}): approval ${r.id} is pending until ${r.expiresAt}. ` +
            `Ask an approver to approve it (portcullis approvals approve ${r.id}), then repeat exactly the same call.`,
          {
            details: {
              approvalId: r.id,
              status: "pending",
              expiresAt: r.expiresAt,
              rule: r.rule,
              ...(r.reason ? { reason: r.reason } : {}),
            },
          },
        );
      case "denied":
        throw new GatewayError(
          "DENIED_APPROVAL",
          `call to ${req.tool} was denied by an approver (approval ${r.id}${r.note ? `: ${r.note}` : ""}); do not repeat it before ${r.expiresAt}`,
          {
            details: {
              approvalId: r.id,
              status: "denied",
              until: r.expiresAt,
              ...(r.note ? { note: r.note } : {}),
            },
          },
        );
      case "expired":
        await this.emit("approval.expired", r, req.identity);
        throw new GatewayError(
          "DENIED_APPROVAL",
          `approval ${r.id} for this call expired at ${r.expiresAt} before it was used; call again to request a new approval`,
          { details: { approvalId: r.id, status: "expired", expiredAt: r.expiresAt } },
        );
    }
  }

  private evaluate(req: ApprovalRequest): Outcome {
    const hash = approvalRequestHash(req.identity, req.tool, req.arguments);
    // IMMEDIATE: two replicas repeating the same approved call must not both consume it.
    return this.db
      .transaction((): Outcome => {
        const now = this.now();
        const latest = this.db
          .prepare<[string], Row>(
            "SELECT * FROM approvals WHERE request_hash = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
          )
          .get(hash);
        if (latest) {
          const live = latest.expires_at > now;
          if (latest.status === "approved" && live) {
            this.db
              .prepare(
                "UPDATE approvals SET status = 'consumed', consumed_at = ?, consumed_call_id = ? WHERE id = ? AND status = 'approved'",
              )
              .run(now, req.callId, latest.id);
            return {
              kind: "run",
              record: toRecord({
                ...latest,
                status: "consumed",
                consumed_at: now,
                consumed_call_id: req.callId,
              }),
            };
          }
          if (latest.status === "pending" && live)
            return { kind: "pending", record: toRecord(latest), created: false };
          if (latest.status === "denied" && live) return { kind: "denied", record: toRecord(latest) };
          if ((latest.status === "pending" || latest.status === "approved") && !live) {
            this.db.prepare("UPDATE approvals SET status = 'expired' WHERE id = ?").run(latest.id);
            return { kind: "expired", record: toRecord({ ...latest, status: "expired" }) };
          }
        }
        const open = this.db
          .prepare<[string, string, number], { n: number }>(
            "SELECT count(*) AS n FROM approvals WHERE requester_issuer = ? AND requester_subject = ? AND status = 'pending' AND expires_at > ?",
          )
          .get(req.identity.issuer ?? "", req.identity.subject, now)!.n;
        if (open >= this.maxPending) {
          throw new GatewayError(
            "DENIED_RATE_LIMIT",
            `you have ${open} approval requests pending (at most ${this.maxPending}); wait for an approver before requesting more`,
            { details: { pending: open } },
          );
        }
        const row: Row = {
          id: `apr_${randomBytes(12).toString("base64url")}`,
          status: "pending",
          request_hash: hash,
          requester_subject: req.identity.subject,
          requester_issuer: req.identity.issuer ?? "",
          requester_scopes: JSON.stringify(req.identity.scopes),
          tool: req.tool,
          arguments: canonicalArgs(req.arguments),
          rule: req.rule,
          reason: req.reason ?? null,
          scope: req.scope,
          call_id: req.callId,
          created_at: now,
          expires_at: now + this.opts.ttlMs,
          decided_by: null,
          decided_by_issuer: null,
          decided_at: null,
          note: null,
          consumed_at: null,
          consumed_call_id: null,
        };
        this.db
          .prepare(
            `INSERT INTO approvals (id, status, request_hash, requester_subject, requester_issuer, requester_scopes, tool, arguments, rule, reason, scope, call_id, created_at, expires_at)
             VALUES (@id, @status, @request_hash, @requester_subject, @requester_issuer, @requester_scopes, @tool, @arguments, @rule, @reason, @scope, @call_id, @created_at, @expires_at)`,
          )
          .run(row);
        return { kind: "pending", record: toRecord(row), created: true };
      })
      .immediate();
  }

  /** Approves or denies a pending request. The approver needs the approver scope and must not be the requester. */
  async decide(
    id: string,
    decision: "approve" | "deny",
    approver: Identity,
    note?: string,
  ): Promise<ApprovalRecord> {
    if (note !== undefined && note.length > MAX_NOTE_CHARS) {
      throw new GatewayError("INVALID_REQUEST", `the note is longer than ${MAX_NOTE_CHARS} characters`);
    }
    if (!approver.scopes.includes(this.opts.approverScope)) {
      throw new GatewayError("FORBIDDEN", `deciding approvals needs the "${this.opts.approverScope}" scope`);
    }
    const record = this.db
      .transaction((): ApprovalRecord => {
        const now = this.now();
        const row = this.db.prepare<[string], Row>("SELECT * FROM approvals WHERE id = ?").get(id);
        if (!row)
          throw new GatewayError("INVALID_REQUEST", `no approval with id ${JSON.stringify(id.slice(0, 64))}`);
        if (row.status === "pending" && row.expires_at <= now) {
          throw new GatewayError(
            "INVALID_REQUEST",
            `approval ${id} expired at ${iso(row.expires_at)} and can no longer be decided`,
          );
        }
        if (row.status !== "pending") {
          throw new GatewayError(
            "INVALID_REQUEST",
            `approval ${id} is already ${row.status}; only pending approvals can be decided`,
          );
        }
        // Subject alone, whatever the issuer: the same name from two identity sources is refused
        // rather than risk one person approving their own call.
        if (row.requester_subject === approver.subject) {
          throw new GatewayError(
            "FORBIDDEN",
            `separation of duties: ${approver.subject} requested this call and cannot decide it; another approver must`,
          );
        }
        const status: ApprovalStatus = decision === "approve" ? "approved" : "denied";
        const updated: Row = {
          ...row,
          status,
          expires_at: now + this.opts.ttlMs,
          decided_by: approver.subject,
          decided_by_issuer: approver.issuer ?? null,
          decided_at: now,
          note: note ?? null,
        };
        this.db
          .prepare(
            "UPDATE approvals SET status = @status, expires_at = @expires_at, decided_by = @decided_by, decided_by_issuer = @decided_by_issuer, decided_at = @decided_at, note = @note WHERE id = @id AND status = 'pending'",
          )
          .run(updated);
        return toRecord(updated);
      })
      .immediate();
    await this.emit(decision === "approve" ? "approval.approved" : "approval.denied", record, approver);
    return record;
  }

  get(id: string): ApprovalRecord | undefined {
    const row = this.db.prepare<[string], Row>("SELECT * FROM approvals WHERE id = ?").get(id);
    return row ? toRecord(this.withExpiry(row)) : undefined;
  }

  /** Newest first. `status` filters; pending requests past their expiry are reported as expired. */
  list(filter: { status?: ApprovalStatus; limit?: number } = {}): ApprovalRecord[] {
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const now = this.now();
    let rows: Row[];
    if (filter.status === "pending") {
      rows = this.db
        .prepare<[number, number], Row>(
          "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > ? ORDER BY created_at DESC LIMIT ?",
        )
        .all(now, limit);
    } else if (filter.status === "expired") {
      rows = this.db
        .prepare<[number, number], Row>(
          "SELECT * FROM approvals WHERE status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= ?) ORDER BY created_at DESC LIMIT ?",
        )
        .all(now, limit);
    } else if (filter.status) {
      rows = this.db
        .prepare<[string, number], Row>(
          "SELECT * FROM approvals WHERE status = ? ORDER BY created_at DESC LIMIT ?",
        )
        .all(filter.status, limit);
    } else {
      rows = this.db
        .prepare<[number], Row>("SELECT * FROM approvals ORDER BY created_at DESC LIMIT ?")
        .all(limit);
    }
    return rows.map((r) => toRecord(this.withExpiry(r)));
  }

  private withExpiry(r: Row): Row {
    return (r.status === "pending" || r.status === "approved") && r.expires_at <= this.now()
      ? { ...r, status: "expired" }
      : r;
  }

  private async emit(type: AuditEvent["type"], r: ApprovalRecord, actor: Identity): Promise<void> {
    if (!this.opts.audit) return;
    try {
      await this.opts.audit.append({
        type,
        time: iso(this.now()),
        callId: r.callId,
        identity: {
          subject: actor.subject,
          scopes: actor.scopes,
          ...(actor.issuer ? { issuer: actor.issuer } : {}),
          ...(actor.clientId ? { clientId: actor.clientId } : {}),
        },
        tool: r.tool,
        arguments: r.arguments,
        detail: {
          approvalId: r.id,
          requestHash: r.requestHash,
          rule: r.rule,
          scope: r.scope,
          requester: r.requester.subject,
          ...(r.note ? { note: r.note } : {}),
        },
      });
    } catch (err) {
      this.opts.logger.error({ err, approvalId: r.id, type }, "could not audit an approval event");
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
