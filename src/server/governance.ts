import type { Logger } from "pino";
import type { LoadedGatewayConfig } from "../config/load.js";
import type { AuditSink, Authenticator, CallPolicy, Identity } from "../core/index.js";
import type { ToolRegistry } from "../gateway/registry.js";

export interface Governance {
  policy: CallPolicy;
  audit: AuditSink;
  authenticator: Authenticator | undefined;
  localIdentity: Identity | undefined;
  close(): Promise<void>;
}

// INTERIM (replaced when src/scopes and src/audit land in this same change): grants every tool.
export async function createGovernance(
  loaded: LoadedGatewayConfig,
  _registry: ToolRegistry,
  _logger: Logger,
): Promise<Governance> {
  const local = loaded.config.identity.local;
  return {
    policy: {
      canSee: () => true,
      constrain: (_i, _t, args) => args,
      admit: async () => undefined,
      approve: async () => undefined,
      manifestHash: () => undefined,
    },
    audit: { append: async () => undefined, close: async () => undefined },
    authenticator: undefined,
    localIdentity: local
      ? { subject: local.subject, scopes: local.scopes, claims: local.claims ?? {}, source: "local" }
      : undefined,
    close: async () => undefined,
  };
}
