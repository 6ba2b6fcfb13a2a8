import type { Logger } from "pino";
import { ConfigError, formatProblem } from "../config/load-file.js";
import { loadConnectorFiles, type LoadedGatewayConfig } from "../config/load.js";
import { connectorFactories, factoryFor } from "../connectors/index.js";
import {
  isGatewayError,
  type AuditSink,
  type Authenticator,
  type CallPolicy,
  type Connector,
  type Identity,
} from "../core/index.js";
import { Gateway } from "../gateway/gateway.js";
import { ToolRegistry, type ConnectorSource } from "../gateway/registry.js";
import { GatewayMetrics } from "../gateway/telemetry.js";
import { createGovernance } from "./governance.js";

export interface ConnectorStatus {
  name: string;
  kind: string;
  file: string;
  state: "up" | "failed";
  tools: number;
  /** Why it failed to start; safe to show to an admin. */
  error?: string;
}

export interface Runtime {
  loaded: LoadedGatewayConfig;
  gateway: Gateway;
  metrics: GatewayMetrics;
  connectors: readonly Connector[];
  statuses: readonly ConnectorStatus[];
  policy: CallPolicy;
  audit: AuditSink;
  authenticator: Authenticator | undefined;
  /** The configured local identity (stdio, and loopback HTTP when allowed). */
  localIdentity: Identity | undefined;
  readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface StartConnectorsResult {
  sources: ConnectorSource[];
  statuses: ConnectorStatus[];
}

/**
 * Creates every configured connector. One that cannot start (an unreachable spec, a missing
 * client library) is reported and left out; the others serve. Invalid files are a ConfigError:
 * nothing starts on a configuration the admin has not got right.
 */
export async function startConnectors(
  loaded: LoadedGatewayConfig,
  logger: Logger,
): Promise<StartConnectorsResult> {
  const entries = loadConnectorFiles(
    loaded.connectorsDir,
    (kind) => factoryFor(kind)?.configSchema,
    Object.keys(connectorFactories),
  );
  const results = await Promise.all(
    entries.map(async (entry) => {
      const factory = factoryFor(entry.kind)!;
      try {
        const connector = await factory.create(entry.config as never, {
          baseDir: loaded.connectorsDir,
          logger: logger.child({ connector: entry.name, kind: entry.kind }),
        });
        const timeoutMs =
          (entry.config as { timeoutMs?: number }).timeoutMs ?? loaded.config.limits.callTimeoutMs;
        return { entry, connector, timeoutMs };
      } catch (err) {
        const message = isGatewayError(err) ? err.message : `failed to start: ${(err as Error).message}`;
        logger.error(
          { connector: entry.name, kind: entry.kind, err: isGatewayError(err) ? err.cause : err },
          message,
        );
        return { entry, error: message };
      }
    }),
  );
  const sources: ConnectorSource[] = [];
  const statuses: ConnectorStatus[] = [];
  for (const r of results) {
    if ("connector" in r && r.connector) {
      sources.push({ connector: r.connector, file: r.entry.file, timeoutMs: r.timeoutMs });
      statuses.push({
        name: r.entry.name,
        kind: r.entry.kind,
        file: r.entry.file,
        state: "up",
        tools: r.connector.tools().length,
      });
    } else {
      statuses.push({
        name: r.entry.name,
        kind: r.entry.kind,
        file: r.entry.file,
        state: "failed",
        tools: 0,
        error: r.error,
      });
    }
  }
  return { sources, statuses };
}

export async function startRuntime(loaded: LoadedGatewayConfig, logger: Logger): Promise<Runtime> {
  const { sources, statuses } = await startConnectors(loaded, logger);
  const connectors = sources.map((s) => s.connector);
  const closeConnectors = async (): Promise<void> => {
    await Promise.allSettled(connectors.map((c) => c.close()));
  };
  let registry: ToolRegistry;
  let governance: Awaited<ReturnType<typeof createGovernance>>;
  try {
    registry = ToolRegistry.build(sources);
    governance = await createGovernance(loaded, registry, logger);
  } catch (err) {
    await closeConnectors();
    throw err;
  }
  const metrics = new GatewayMetrics();
  const gateway = new Gateway({
    registry,
    policy: governance.policy,
    audit: governance.audit,
    limits: loaded.config.limits,
    logger,
    metrics,
    traceArguments: loaded.config.observability.traceArguments,
  });
  logger.info(
    { connectors: statuses.map((s) => `${s.name}(${s.kind}):${s.state}`), tools: registry.size },
    "gateway ready",
  );

  return {
    loaded,
    gateway,
    metrics,
    connectors,
    statuses,
    policy: governance.policy,
    audit: governance.audit,
    authenticator: governance.authenticator,
    localIdentity: governance.localIdentity,
    async readiness() {
      const health = await Promise.all(
        connectors.map(async (c) => {
          try {
            return [c.name, await c.health()] as const;
          } catch (err) {
            return [c.name, { ok: false, detail: (err as Error).message }] as const;
          }
        }),
      );
      const failed = statuses.filter((s) => s.state === "failed").map((s) => s.name);
      const detail = {
        connectors: Object.fromEntries([
          ...health.map(([name, h]) => [name, h.ok ? "up" : `down${h.detail ? `: ${h.detail}` : ""}`]),
          ...failed.map((name) => [name, "failed to start"]),
        ]),
      };
      return { ready: health.every(([, h]) => h.ok), detail };
    },
    async close() {
      await closeConnectors();
      await governance.close();
    },
  };
}

/** Renders a ConfigError for a terminal: one problem per line. */
export function describeStartupError(err: unknown): string {
  if (err instanceof ConfigError) return err.problems.map((p) => `error: ${formatProblem(p)}`).join("\n");
  if (isGatewayError(err)) return `error: ${err.message}`;
  return `error: ${(err as Error).message ?? String(err)}`;
}
