import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import canonicalize from "canonicalize";
import type { Logger } from "pino";
import { ConfigError, formatProblem, type ConfigProblem } from "../config/load-file.js";
import { loadConnectorFiles, type ConnectorFileEntry, type LoadedGatewayConfig } from "../config/load.js";
import { connectorFactories, factoryFor } from "../connectors/index.js";
import {
  isGatewayError,
  resilienceSchema,
  type ResilienceConfig,
  type AuditSink,
  type Authenticator,
  type CallPolicy,
  type Connector,
  type Identity,
  type ToolDefinition,
} from "../core/index.js";
import { Gateway } from "../gateway/gateway.js";
import { PinStore } from "../gateway/pins.js";
import { ToolRegistry, toolHash, type ConnectorSource } from "../gateway/registry.js";
import { GatewayMetrics } from "../gateway/telemetry.js";
import { LoopGuard } from "../gateway/loop-guard.js";
import { UpstreamGuard } from "../gateway/resilience.js";
import { createGovernance, type Governance } from "./governance.js";

export interface ConnectorStatus {
  name: string;
  kind: string;
  file: string;
  state: "up" | "failed";
  required: boolean;
  tools: number;
  /** Why it failed to start; safe to show to an admin. */
  error?: string;
}

/** A tool whose definition changed on reload (its upstream spec/WSDL or its connector file changed). */
export interface ToolChange {
  tool: string;
  change: "added" | "removed" | "changed";
  previousHash?: string;
  hash?: string;
  /** Pinned connector: the new definition is withheld until an admin accepts it. */
  withheld?: boolean;
}

export interface ReloadReport {
  ok: boolean;
  reason: string;
  problems: ConfigProblem[];
  connectors: ConnectorStatus[];
  toolChanges: ToolChange[];
  tools: number;
}

interface LiveConnector {
  entry: ConnectorFileEntry;
  /** The connector's bulkhead and breakers; kept across reloads while its resilience block is unchanged. */
  guard: UpstreamGuard | undefined;
  resilienceHash: string;
  /** Digest of the connector's validated config: an unchanged file keeps its running connector. */
  configHash: string;
  connector: Connector | undefined;
  status: ConnectorStatus;
  timeoutMs: number;
}

/**
 * The running deployment: connectors built from connectors/*.json, the tool registry, the scope
 * policy, the audit log and the gateway. `reload()` rebuilds what changed without a restart; a
 * broken file keeps the last good state.
 */
export class Runtime {
  readonly gateway: Gateway;
  readonly metrics: GatewayMetrics;
  readonly pins: PinStore;
  private live: Map<string, LiveConnector>;
  private watchers: FSWatcher[] = [];
  private reloadTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<ReloadReport> = Promise.resolve({} as ReloadReport);
  private closed = false;

  private constructor(
    readonly loaded: LoadedGatewayConfig,
    readonly governance: Governance,
    readonly logger: Logger,
    live: Map<string, LiveConnector>,
    registry: ToolRegistry,
    pins: PinStore,
    metrics: GatewayMetrics,
  ) {
    this.live = live;
    this.pins = pins;
    this.metrics = metrics;
    this.gateway = new Gateway({
      registry,
      policy: governance.policy,
      audit: governance.audit,
      limits: loaded.config.limits,
      logger,
      metrics: this.metrics,
      traceArguments: loaded.config.observability.traceArguments,
      loopGuard: new LoopGuard(loaded.config.limits.loopGuard, { logger }),
      outcomeBeforeAnswer: loaded.config.audit.outcomeBeforeAnswer,
    });
  }

  static async start(loaded: LoadedGatewayConfig, logger: Logger): Promise<Runtime> {
    const pins = new PinStore(join(loaded.auditDir, "pins.json"));
    const metrics = new GatewayMetrics();
    const entries = readConnectorFiles(loaded);
    const live = await startConnectors(loaded, entries, new Map(), logger, false, metrics);
    const retire = async (): Promise<void> => {
      await Promise.allSettled([...live.values()].map((l) => l.connector?.close()));
    };
    try {
      const { registry } = buildRegistry(live, pins, undefined, "startup");
      const governance = await createGovernance(
        loaded,
        registry.tools.map((t) => t.def),
        logger,
      );
      const runtime = new Runtime(loaded, governance, logger, live, registry, pins, metrics);
      logger.info(
        { connectors: runtime.statuses.map((s) => `${s.name}(${s.kind}):${s.state}`), tools: registry.size },
        "gateway ready",
      );
      return runtime;
    } catch (err) {
      await retire();
      throw err;
    }
  }

  get connectors(): Connector[] {
    return [...this.live.values()].flatMap((l) => (l.connector ? [l.connector] : []));
  }

  get statuses(): ConnectorStatus[] {
    return [...this.live.values()].map((l) => l.status);
  }

  get audit(): AuditSink {
    return this.governance.audit;
  }

  get policy(): CallPolicy {
    return this.gateway.currentPolicy;
  }

  get authenticator(): Authenticator | undefined {
    return this.governance.authenticator;
  }

  get localIdentity(): Identity | undefined {
    return this.governance.localIdentity;
  }

  /**
   * Re-reads connectors/ and scopes/. Connectors whose file is unchanged keep running (unless
   * `force`, which also re-reads specs and WSDLs); the registry and policy swap in one step; calls
   * in flight finish on the old definitions, whose retired connectors close afterwards.
   */
  reload(reason: string, options: { force?: boolean; actor?: string } = {}): Promise<ReloadReport> {
    // Reloads run one after another: two overlapping ones would race on the connector set.
    const run = this.reloading.catch(() => undefined).then(() => this.doReload(reason, options));
    this.reloading = run;
    return run;
  }

  private async doReload(
    reason: string,
    options: { force?: boolean; actor?: string },
  ): Promise<ReloadReport> {
    const log = this.logger.child({ reload: reason });
    const fail = (problems: ConfigProblem[]): ReloadReport => {
      log.error(
        { problems: problems.map(formatProblem) },
        "reload refused: keeping the last good configuration",
      );
      return {
        ok: false,
        reason,
        problems,
        connectors: this.statuses,
        toolChanges: [],
        tools: this.gateway.registry.size,
      };
    };
    if (this.closed) return fail([{ file: "", path: "", message: "the gateway is shutting down" }]);
    let entries: ConnectorFileEntry[];
    try {
      entries = readConnectorFiles(this.loaded);
    } catch (err) {
      if (err instanceof ConfigError) return fail([...err.problems]);
      throw err;
    }
    const next = await startConnectors(
      this.loaded,
      entries,
      this.live,
      log,
      options.force ?? false,
      this.metrics,
    );
    const fresh = [...next.values()].filter(
      (l) => l.connector && this.live.get(l.entry.name)?.connector !== l.connector,
    );
    const keptGuards = new Set([...this.live.values()].map((l) => l.guard));
    const discardFresh = async (): Promise<void> => {
      for (const l of next.values()) if (!keptGuards.has(l.guard)) l.guard?.dispose();
      await Promise.allSettled(fresh.map((l) => l.connector?.close()));
    };
    let registry: ToolRegistry;
    let changes: ToolChange[];
    let policy: CallPolicy;
    try {
      let allTools: ToolDefinition[];
      ({ registry, changes, allTools } = buildRegistry(next, this.pins, this.gateway.registry, reason));
      policy = this.governance.rebuildPolicy(allTools);
    } catch (err) {
      await discardFresh();
      if (err instanceof ConfigError) return fail([...err.problems]);
      throw err;
    }
    const previous = this.gateway.registry;
    const retired = [...this.live.values()].filter(
      (l) => l.connector && ![...next.values()].some((n) => n.connector === l.connector),
    );
    const nextGuards = new Set([...next.values()].map((l) => l.guard));
    const retiredGuards = [...this.live.values()].flatMap((l) =>
      l.guard && !nextGuards.has(l.guard) ? [l.guard] : [],
    );
    this.live = next;
    this.gateway.setRegistry(registry, policy);
    for (const change of changes) {
      log.warn(
        change,
        change.withheld
          ? "tool definition changed: withheld until an admin accepts it"
          : "tool definition changed",
      );
      await this.governance.audit
        .append({
          type: "tool.changed",
          time: new Date().toISOString(),
          tool: change.tool,
          ...(change.hash ? { toolHash: change.hash } : {}),
          detail: { ...change, reason, ...(options.actor ? { actor: options.actor } : {}) },
        })
        .catch((err: unknown) => log.error({ err }, "audit record of a tool change could not be written"));
    }
    // Connectors no longer served close once the calls that started on them have finished.
    void previous.idle().then(() => {
      for (const g of retiredGuards) g.dispose();
      return Promise.allSettled(retired.map((l) => l.connector?.close()));
    });
    log.info({ tools: registry.size, changes: changes.length }, "configuration reloaded");
    return {
      ok: true,
      reason,
      problems: [],
      connectors: this.statuses,
      toolChanges: changes,
      tools: registry.size,
    };
  }

  /** Accepts the current definition of a pinned tool; it is served again after the reload this triggers. */
  async acceptTool(tool: string, actor: string): Promise<ReloadReport | undefined> {
    for (const l of this.live.values()) {
      const def = l.connector?.tools().find((t) => t.name === tool);
      if (def) {
        this.pins.accept(tool, toolHash(def), actor);
        return this.reload(`tool ${tool} accepted by ${actor}`, { actor });
      }
    }
    return undefined;
  }

  /** Pinned tools whose current definition differs from the accepted one. */
  withheldTools(): { tool: string; connector: string; hash: string; acceptedHash: string }[] {
    const out = [];
    for (const l of this.live.values()) {
      if (!l.entry.config || !(l.entry.config as { pinTools?: boolean }).pinTools || !l.connector) continue;
      for (const def of l.connector.tools()) {
        const pin = this.pins.get(def.name);
        const hash = toolHash(def);
        if (pin && pin.hash !== hash)
          out.push({ tool: def.name, connector: l.entry.name, hash, acceptedHash: pin.hash });
      }
    }
    return out;
  }

  /** Watches connectors/ and scopes/; edits are debounced into one reload. */
  watch(debounceMs = 250): void {
    for (const dir of [this.loaded.connectorsDir, this.loaded.scopesDir]) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, file) => {
          if (file !== null && (file.startsWith(".") || !file.endsWith(".json"))) return;
          clearTimeout(this.reloadTimer);
          this.reloadTimer = setTimeout(() => void this.reload(`file change in ${dir}`), debounceMs);
        });
        watcher.on("error", (err) =>
          this.logger.warn({ err, dir }, "file watch failed; hot reload off for this directory"),
        );
        this.watchers.push(watcher);
      } catch (err) {
        this.logger.warn({ err, dir }, "cannot watch directory; hot reload off for it");
      }
    }
  }

  async readiness(): Promise<{ ready: boolean; detail: Record<string, unknown> }> {
    const rows = await Promise.all(
      [...this.live.values()].map(async (l) => {
        if (!l.connector)
          return {
            name: l.entry.name,
            required: l.status.required,
            ok: false,
            detail: `failed to start: ${l.status.error}`,
          };
        if (l.guard?.state() === "open") {
          return { name: l.entry.name, required: l.status.required, ok: false, detail: "down: circuit open" };
        }
        try {
          const h = await l.connector.health();
          return {
            name: l.entry.name,
            required: l.status.required,
            ok: h.ok,
            detail: h.ok ? "up" : `down${h.detail ? `: ${h.detail}` : ""}`,
          };
        } catch (err) {
          return {
            name: l.entry.name,
            required: l.status.required,
            ok: false,
            detail: `down: ${(err as Error).message}`,
          };
        }
      }),
    );
    // A log that lost an fsync refuses every call until restart. A store that failed once (locked,
    // full) retries on the next call by itself, so it is shown but does not take the gateway out.
    const audit = this.governance.auditLog?.health();
    const ready = !this.closed && rows.every((r) => r.ok || !r.required) && audit?.restartNeeded !== true;
    return {
      ready,
      detail: {
        connectors: Object.fromEntries(rows.map((r) => [r.name, r.detail])),
        ...(audit ? { audit: audit.ok ? "up" : `down: ${audit.detail ?? "unknown"}` } : {}),
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reloadTimer);
    for (const w of this.watchers) w.close();
    await this.reloading.catch(() => undefined);
    await Promise.allSettled(this.connectors.map((c) => c.close()));
    for (const l of this.live.values()) l.guard?.dispose();
    await this.governance.close();
  }
}

export async function startRuntime(loaded: LoadedGatewayConfig, logger: Logger): Promise<Runtime> {
  return Runtime.start(loaded, logger);
}

function readConnectorFiles(loaded: LoadedGatewayConfig): ConnectorFileEntry[] {
  return loadConnectorFiles(
    loaded.connectorsDir,
    (kind) => factoryFor(kind)?.configSchema,
    Object.keys(connectorFactories),
  );
}

function configDigest(config: unknown): string {
  return createHash("sha256")
    .update(canonicalize(config) ?? "")
    .digest("hex");
}

/**
 * Starts the connectors of `entries`, reusing a running one whose config is unchanged. One that
 * cannot start (an unreachable spec, a missing client library) is reported and left out; the
 * others serve.
 */
async function startConnectors(
  loaded: LoadedGatewayConfig,
  entries: readonly ConnectorFileEntry[],
  current: ReadonlyMap<string, LiveConnector>,
  logger: Logger,
  force: boolean,
  metrics: GatewayMetrics,
): Promise<Map<string, LiveConnector>> {
  const results = await Promise.all(
    entries.map(async (entry): Promise<LiveConnector> => {
      const configHash = configDigest(entry.config);
      const config = entry.config as {
        timeoutMs?: number;
        required?: boolean;
        resilience?: ResilienceConfig;
      };
      const resilience = config.resilience ?? resilienceSchema.parse({});
      const resilienceHash = configDigest(resilience);
      const timeoutMs = config.timeoutMs ?? loaded.config.limits.callTimeoutMs;
      const base = {
        name: entry.name,
        kind: entry.kind,
        file: entry.file,
        required: config.required ?? false,
      };
      const existing = current.get(entry.name);
      if (!force && existing?.connector && existing.configHash === configHash) return { ...existing, entry };
      // An open circuit survives an unrelated edit of the connector file.
      const guard =
        existing?.guard && existing.resilienceHash === resilienceHash
          ? existing.guard
          : new UpstreamGuard(entry.name, resilience, metrics, logger.child({ connector: entry.name }));
      try {
        const connector = await factoryFor(entry.kind)!.create(entry.config as never, {
          baseDir: loaded.connectorsDir,
          logger: logger.child({ connector: entry.name, kind: entry.kind }),
        });
        return {
          entry,
          configHash,
          connector,
          timeoutMs,
          guard,
          resilienceHash,
          status: { ...base, state: "up", tools: connector.tools().length },
        };
      } catch (err) {
        const message = isGatewayError(err)
          ? err.message
          : `connector "${entry.name}" (${entry.kind}) failed to start: ${(err as Error).message}`;
        logger.error(
          { connector: entry.name, kind: entry.kind, err: isGatewayError(err) ? err.cause : err },
          message,
        );
        return {
          entry,
          configHash,
          connector: undefined,
          timeoutMs,
          guard,
          resilienceHash,
          status: { ...base, state: "failed", tools: 0, error: message },
        };
      }
    }),
  );
  return new Map(results.map((l) => [l.entry.name, l]));
}

/** Builds the registry, withholding changed tools of pinned connectors, and lists what changed. */
function buildRegistry(
  live: ReadonlyMap<string, LiveConnector>,
  pins: PinStore,
  previous: ToolRegistry | undefined,
  reason: string,
): { registry: ToolRegistry; changes: ToolChange[]; allTools: ToolDefinition[] } {
  const sources: ConnectorSource[] = [];
  const withheld = new Set<string>();
  for (const l of live.values()) {
    if (!l.connector) continue;
    sources.push({
      connector: l.connector,
      file: l.entry.file,
      timeoutMs: l.timeoutMs,
      ...(l.guard ? { guard: l.guard } : {}),
    });
    if (!(l.entry.config as { pinTools?: boolean }).pinTools) continue;
    for (const def of l.connector.tools()) {
      const hash = toolHash(def);
      const pin = pins.get(def.name);
      if (!pin) pins.accept(def.name, hash, `first use (${reason})`);
      else if (pin.hash !== hash) withheld.add(def.name);
    }
  }
  const registry = ToolRegistry.build(sources, withheld);
  const changes: ToolChange[] = [];
  if (previous) {
    const now = new Map(
      sources.flatMap((s) => s.connector.tools().map((d) => [d.name, toolHash(d)] as const)),
    );
    for (const old of previous.tools) {
      const hash = now.get(old.def.name);
      if (hash === undefined) changes.push({ tool: old.def.name, change: "removed", previousHash: old.hash });
      else if (hash !== old.hash) {
        changes.push({
          tool: old.def.name,
          change: "changed",
          previousHash: old.hash,
          hash,
          ...(withheld.has(old.def.name) ? { withheld: true } : {}),
        });
      }
    }
    for (const [name, hash] of now) {
      if (!previous.get(name) && !withheld.has(name)) changes.push({ tool: name, change: "added", hash });
    }
  }
  // Manifests are checked against every tool, withheld ones included: pinning must not turn a
  // valid manifest into a load error.
  const allTools = sources.flatMap((s) => [...s.connector.tools()]);
  return { registry, changes, allTools };
}

/** Renders a ConfigError for a terminal: one problem per line. */
export function describeStartupError(err: unknown): string {
  if (err instanceof ConfigError) return err.problems.map((p) => `error: ${formatProblem(p)}`).join("\n");
  if (isGatewayError(err)) return `error: ${err.message}`;
  return `error: ${(err as Error).message ?? String(err)}`;
}
