import type { Logger } from "pino";
import { openAuditLog } from "../audit/open.js";
import type { AuditLog } from "../audit/log.js";
import { createAuditRoutes } from "../audit/http.js";
import type { LoadedGatewayConfig } from "../config/load.js";
import type { AuditSink, Authenticator, CallPolicy, Identity, ToolDefinition } from "../core/index.js";
import { openScopeRuntime, type ScopeRuntime } from "../scopes/setup.js";
import type { Route } from "./http.js";

export interface Governance {
  /** The audit log the pipeline writes to (a no-op only when audit.enabled is false on purpose). */
  audit: AuditSink;
  /** The audit log itself, for the /audit routes; undefined when disabled. */
  auditLog: AuditLog | undefined;
  authenticator: Authenticator | undefined;
  localIdentity: Identity | undefined;
  policy: CallPolicy;
  /** Recompiles the scope manifests against a new tool set; throws ConfigError, keeping the old policy. */
  rebuildPolicy(tools: readonly ToolDefinition[]): CallPolicy;
  /** Approvals (approver scope) and audit (auditor scope) HTTP routes. */
  routes: Route[];
  roles: { admin: string; approver: string; auditor: string };
  close(): Promise<void>;
}

/** The canonical resource URI: the JWT audience unless identity.jwt.audience says otherwise. */
export function resourceUri(loaded: LoadedGatewayConfig): string {
  const http = loaded.config.transports.http;
  return (
    http.publicUrl ??
    `http://${http.host.includes(":") ? `[${http.host}]` : http.host}:${http.port}${http.path}`
  );
}

export async function createGovernance(
  loaded: LoadedGatewayConfig,
  tools: readonly ToolDefinition[],
  logger: Logger,
): Promise<Governance> {
  const { config } = loaded;
  let auditLog: AuditLog | undefined;
  let audit: AuditSink;
  if (config.audit.enabled) {
    auditLog = await openAuditLog({
      config: config.audit,
      dir: loaded.auditDir,
      logger: logger.child({ component: "audit" }),
    });
    audit = auditLog;
  } else {
    logger.warn("audit.enabled is false: tool calls are NOT recorded; never run like this in production");
    audit = { append: async () => undefined, close: async () => undefined };
  }

  let scopes: ScopeRuntime;
  try {
    scopes = openScopeRuntime({
      identity: config.identity,
      scopesDir: loaded.scopesDir,
      stateDir: loaded.auditDir,
      tools,
      audience: config.identity.jwt?.audience ?? resourceUri(loaded),
      logger: logger.child({ component: "scopes" }),
      audit,
      onIgnoredArguments: (event) =>
        logger.warn(event, "agent sent claim-bound arguments; they were ignored"),
    });
  } catch (err) {
    await audit.close();
    throw err;
  }

  const roles = config.identity.roles;
  const routes: Route[] = [
    { prefix: "/admin/approvals", scope: roles.approver, handler: scopes.approvalsHandler },
  ];
  if (auditLog) routes.push({ prefix: "/audit", scope: roles.auditor, handler: createAuditRoutes(auditLog) });

  return {
    audit,
    auditLog,
    authenticator: scopes.authenticator,
    localIdentity: scopes.localIdentity,
    get policy() {
      return scopes.policy;
    },
    rebuildPolicy: (next) => scopes.reload(next),
    routes,
    roles,
    async close() {
      await scopes.close();
      await audit.close();
    },
  };
}
