import { resolve } from "node:path";
import type { Logger } from "pino";
import type { IdentityConfig } from "../config/identity-schema.js";
import type { AuditSink, Authenticator, Identity, ToolDefinition } from "../core/index.js";
import { ApprovalStore } from "./approvals.js";
import { createAuthenticator } from "./authenticator.js";
import { createApprovalsHandler, type ApprovalsHandler } from "./http.js";
import { localIdentity } from "./identity.js";
import { loadScopeManifests } from "./manifests.js";
import { createCallPolicy, type IgnoredArgumentsEvent, type ScopePolicy } from "./policy.js";
import { MemoryRateLimiter, type RateLimiter } from "./rate-limit.js";
import { RedisRateLimiter } from "./rate-limit-redis.js";

export interface ScopeRuntimeOptions {
  identity: IdentityConfig;
  /** Directory of scope manifests (paths.scopes, resolved). */
  scopesDir: string;
  /** Directory for approval state (paths.audit, resolved). */
  stateDir: string;
  tools: readonly ToolDefinition[];
  /** The gateway's canonical resource URI (JWT audience unless identity.jwt.audience is set). */
  audience: string;
  logger: Logger;
  audit?: AuditSink;
  onIgnoredArguments?: (event: IgnoredArgumentsEvent) => void;
}

/** Everything src/scopes offers the server, built from the config in one place. */
export interface ScopeRuntime {
  readonly policy: ScopePolicy;
  readonly authenticator: Authenticator | undefined;
  readonly localIdentity: Identity | undefined;
  readonly approvals: ApprovalStore;
  /** Mount under `/admin/approvals`, guarded by `identity.roles.approver`. */
  readonly approvalsHandler: ApprovalsHandler;
  /** Reloads the manifests against the current tools; rate-limit and approval state carry over. */
  reload(tools: readonly ToolDefinition[]): ScopePolicy;
  close(): Promise<void>;
}

export function createRateLimiter(identity: IdentityConfig, logger: Logger): RateLimiter {
  const { redisUrl, keyPrefix } = identity.rateLimits;
  return redisUrl ? new RedisRateLimiter({ url: redisUrl, keyPrefix, logger }) : new MemoryRateLimiter();
}

export function openApprovalStore(
  identity: IdentityConfig,
  stateDir: string,
  logger: Logger,
  audit?: AuditSink,
): ApprovalStore {
  return ApprovalStore.open({
    file: resolve(stateDir, identity.approvals.file),
    ttlMs: identity.approvals.ttlSec * 1000,
    approverScope: identity.roles.approver,
    maxPendingPerIdentity: identity.approvals.maxPendingPerIdentity,
    logger,
    ...(audit ? { audit } : {}),
  });
}

export function openScopeRuntime(opts: ScopeRuntimeOptions): ScopeRuntime {
  const { identity, logger } = opts;
  const authenticator = identity.jwt
    ? createAuthenticator(identity.jwt, { audience: opts.audience, logger })
    : undefined;
  const approvals = openApprovalStore(identity, opts.stateDir, logger, opts.audit);
  const rateLimiter = createRateLimiter(identity, logger);
  const build = (tools: readonly ToolDefinition[]): ScopePolicy =>
    createCallPolicy(loadScopeManifests(opts.scopesDir, tools), {
      logger,
      rateLimiter,
      approvals,
      ...(opts.onIgnoredArguments ? { onIgnoredArguments: opts.onIgnoredArguments } : {}),
    });
  let policy: ScopePolicy;
  try {
    policy = build(opts.tools);
  } catch (err) {
    approvals.close();
    void rateLimiter.close();
    throw err;
  }
  return {
    get policy() {
      return policy;
    },
    authenticator,
    localIdentity: identity.local ? localIdentity(identity.local) : undefined,
    approvals,
    approvalsHandler: createApprovalsHandler(approvals),
    reload(tools) {
      policy = build(tools);
      return policy;
    },
    async close() {
      approvals.close();
      await rateLimiter.close();
    },
  };
}
