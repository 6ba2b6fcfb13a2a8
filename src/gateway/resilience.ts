import {
  BrokenCircuitError,
  BulkheadRejectedError,
  bulkhead,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  type BulkheadPolicy,
  type CircuitBreakerPolicy,
  type IDisposable,
} from "cockatiel";
import type { Logger } from "pino";
import {
  GatewayError,
  isGatewayError,
  resilienceSchema,
  type ResilienceConfig,
  type ResilienceInput,
} from "../core/index.js";
import type { GatewayMetrics } from "./telemetry.js";

export { resilienceSchema, type ResilienceConfig, type ResilienceInput };

export type CircuitStateName = "closed" | "open" | "half-open";

/** What a call's failure says about the upstream's health. */
export type Verdict = "failure" | "answered" | "neutral";

const FAILURE_CODES = new Set(["UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "BUSY"]);
const ANSWER_KINDS = new Set(["request", "auth", "policy"]);

/**
 * True for backend conditions only. Caller errors (INVALID_*, a 4xx answer) must never open a
 * circuit: one agent's bad requests would otherwise cut every other agent off the upstream.
 */
export function isBackendFailure(err: unknown): boolean {
  if (!isGatewayError(err)) return false;
  if (FAILURE_CODES.has(err.code)) return true;
  if (err.code !== "UPSTREAM_ERROR") return false;
  const status = err.details?.status ?? err.details?.httpStatus;
  if (typeof status === "number") return status >= 500;
  return err.details?.retryable === true || (err as { retryable?: unknown }).retryable === true;
}

/**
 * "answered": the upstream replied (an error it chose to give counts as proof of life and resets
 * the consecutive count). "neutral": says nothing about the upstream (the caller cancelled, a bug
 * on our side) and leaves the count alone.
 */
export function classifyFailure(err: unknown, signal: AbortSignal): Verdict {
  if (signal.aborted) {
    // The gateway aborts with UPSTREAM_TIMEOUT when the budget runs out; any other abort is the
    // caller's (cancellation, shutdown), whatever error the connector then reported.
    return isBackendFailure(signal.reason) ? "failure" : "neutral";
  }
  if (isBackendFailure(err)) return "failure";
  if (isGatewayError(err) && err.code === "CANCELLED") return "neutral";
  if (isGatewayError(err) && (ANSWER_KINDS.has(err.kind) || err.kind === "upstream")) return "answered";
  return "neutral";
}

/** Carries a failed call through the breakers, saying which of them must count it. */
class Judged extends Error {
  constructor(
    readonly original: unknown,
    readonly verdict: Verdict,
    /** Breakers for which this call was the half-open trial: even a neutral end must re-open them. */
    readonly probeOf: ReadonlySet<CircuitBreakerPolicy>,
  ) {
    super("judged upstream failure");
  }
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

interface Circuit {
  readonly policy: CircuitBreakerPolicy;
  readonly counter: ConsecutiveBreaker;
  /** Local clock reading when the circuit last opened (read after cockatiel's, so never earlier). */
  openedAt: number;
  failuresAtOpen: number;
  readonly subscriptions: IDisposable[];
}

interface Lane {
  readonly tool: string;
  readonly circuit: Circuit;
  readonly bulkhead: BulkheadPolicy | undefined;
}

const HALF_OPEN_RETRY_MS = 1_000;
const DEFAULT_BUSY_RETRY_MS = 1_000;
const metricOwners = new WeakMap<GatewayMetrics, Map<string, UpstreamGuard>>();

/**
 * Bulkheads and circuit breakers for one connector's upstream: one of each for the connector, and
 * one breaker (plus an optional bulkhead) per tool, so one broken operation is cut off on its own
 * while the connector's circuit still opens when the whole backend is failing.
 *
 * A call passes the tool's bulkhead, then the connector's, then the tool's breaker and the
 * connector's breaker. An open circuit answers before any queueing, so failing fast never waits
 * behind calls that are about to fail too.
 */
export class UpstreamGuard {
  private readonly connectorCircuit: Circuit;
  private readonly connectorBulkhead: BulkheadPolicy;
  private readonly lanes = new Map<string, Lane>();
  private latencyMs: number | undefined;
  private disposed = false;

  constructor(
    readonly connector: string,
    private readonly config: ResilienceConfig,
    private readonly metrics?: GatewayMetrics,
    private readonly logger?: Logger,
  ) {
    this.connectorBulkhead = bulkhead(config.maxConcurrent, config.maxQueue);
    this.connectorCircuit = this.circuit(config.breaker.consecutiveFailures, undefined);
    if (metrics) {
      let owners = metricOwners.get(metrics);
      if (!owners) metricOwners.set(metrics, (owners = new Map()));
      // A replacement guard (hot reload) takes over the label; the old one's dispose leaves it be.
      owners.set(connector, this);
      metrics.circuitState.set({ connector }, 0);
    }
  }

  /** The connector-level circuit's state (tool circuits are reported in logs). */
  state(): CircuitStateName {
    return stateName(this.connectorCircuit.policy.state);
  }

  /** A tool's own circuit state; "closed" for a tool not called yet. */
  toolState(tool: string): CircuitStateName {
    const lane = this.lanes.get(tool);
    return lane ? stateName(lane.circuit.policy.state) : "closed";
  }

  /**
   * Runs `fn` within the connector's and the tool's limits. `signal` is the call's own (aborted on
   * timeout with an UPSTREAM_TIMEOUT reason, or on cancellation); `fn` receives it. A call waiting
   * in a queue leaves it as soon as `signal` aborts.
   */
  async execute<T>(tool: string, fn: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) throw abortError(signal);
    const lane = this.lane(tool);
    this.refuseIfOpen(lane);
    const run = (): Promise<T> => this.throughBreakers(lane, fn, signal);
    const inConnector = (): Promise<T> =>
      this.connectorBulkhead.execute(run).catch((err: unknown) => {
        throw err instanceof BulkheadRejectedError
          ? this.busy(this.connectorBulkhead, this.config.maxConcurrent, undefined)
          : err;
      });
    const toolBulkhead = lane.bulkhead;
    const queued = toolBulkhead
      ? toolBulkhead.execute(inConnector).catch((err: unknown) => {
          throw err instanceof BulkheadRejectedError
            ? this.busy(toolBulkhead, this.config.perTool.maxConcurrent ?? 0, tool)
            : err;
        })
      : inConnector();
    return raceAbort(queued, signal);
  }

  /** Detaches from events and the metric. Calls in flight finish normally. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of [this.connectorCircuit, ...[...this.lanes.values()].map((l) => l.circuit)]) {
      for (const s of c.subscriptions) s.dispose();
    }
    if (this.metrics) {
      const owners = metricOwners.get(this.metrics);
      if (owners?.get(this.connector) === this) {
        owners.delete(this.connector);
        this.metrics.circuitState.remove({ connector: this.connector });
      }
    }
  }

  private async throughBreakers<T>(
    lane: Lane,
    fn: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T> {
    // Again after the queue: the circuit may have opened while this call waited.
    if (signal.aborted) throw abortError(signal);
    this.refuseIfOpen(lane);
    // Past refuseIfOpen, an Open circuit is one whose delay has run out: this call is its trial.
    const probeOf = new Set<CircuitBreakerPolicy>();
    for (const c of [lane.circuit, this.connectorCircuit]) {
      if (c.policy.state === CircuitState.Open) probeOf.add(c.policy);
    }
    const started = performance.now();
    const attempt = async (): Promise<Outcome<T>> => {
      try {
        const value = await raceAbort((async () => fn(signal))(), signal);
        this.observeLatency(performance.now() - started);
        return { ok: true, value };
      } catch (err) {
        const verdict = classifyFailure(err, signal);
        // An answer is proof of life for the breakers, yet still the caller's error.
        if (verdict === "answered") return { ok: false, error: err };
        throw new Judged(err, verdict, probeOf);
      }
    };
    let outcome: Outcome<T>;
    try {
      // Both breakers are entered synchronously from here, so no other call can slip between
      // the check above and the trial call claiming the half-open slot.
      outcome = await lane.circuit.policy.execute(() => this.connectorCircuit.policy.execute(attempt));
    } catch (err) {
      if (err instanceof Judged) throw err.original;
      if (err instanceof BrokenCircuitError) throw this.refusal(lane);
      throw err;
    }
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  private refuseIfOpen(lane: Lane): void {
    for (const [circuit, tool] of [
      [this.connectorCircuit, undefined],
      [lane.circuit, lane.tool],
    ] as const) {
      const state = circuit.policy.state;
      if (state === CircuitState.Closed) continue;
      if (state === CircuitState.Open && Date.now() - circuit.openedAt >= this.config.breaker.halfOpenAfterMs)
        continue;
      throw this.openError(circuit, tool);
    }
  }

  /** The error for a circuit that cockatiel found open although refuseIfOpen let the call in. */
  private refusal(lane: Lane): GatewayError {
    const open = [this.connectorCircuit, lane.circuit].find((c) => c.policy.state !== CircuitState.Closed);
    return this.openError(open ?? this.connectorCircuit, open === lane.circuit ? lane.tool : undefined);
  }

  private openError(circuit: Circuit, tool: string | undefined): GatewayError {
    const what =
      tool === undefined
        ? `connector "${this.connector}"`
        : `tool "${tool}" of connector "${this.connector}"`;
    const failures = Math.max(circuit.failuresAtOpen, 1);
    const plural = failures === 1 ? "failure" : "failures";
    if (circuit.policy.state === CircuitState.HalfOpen) {
      return new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${what} is failing (circuit half-open after ${failures} consecutive ${plural}; one trial call is testing it now); retry after ${seconds(HALF_OPEN_RETRY_MS)} s`,
        { details: { retryAfterMs: HALF_OPEN_RETRY_MS } },
      );
    }
    const retryAfterMs = Math.max(
      1,
      Math.ceil(circuit.openedAt + this.config.breaker.halfOpenAfterMs - Date.now()),
    );
    return new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `${what} is failing (circuit open after ${failures} consecutive ${plural}); retry after ${seconds(retryAfterMs)} s`,
      { details: { retryAfterMs } },
    );
  }

  private busy(policy: BulkheadPolicy, capacity: number, tool: string | undefined): GatewayError {
    const inFlight = capacity - policy.executionSlots;
    const queued = this.config.maxQueue - policy.queueSlots;
    const what =
      tool === undefined
        ? `connector "${this.connector}"`
        : `tool "${tool}" of connector "${this.connector}"`;
    // About one call's duration: by then a slot has likely freed.
    const retryAfterMs = Math.min(Math.max(Math.round(this.latencyMs ?? DEFAULT_BUSY_RETRY_MS), 100), 30_000);
    return new GatewayError(
      "BUSY",
      `${what} has ${inFlight} calls in flight and ${queued} queued; retry shortly`,
      { details: { retryAfterMs } },
    );
  }

  private observeLatency(ms: number): void {
    this.latencyMs = this.latencyMs === undefined ? ms : this.latencyMs * 0.8 + ms * 0.2;
  }

  private lane(tool: string): Lane {
    let lane = this.lanes.get(tool);
    if (!lane) {
      // Tool names come from the registry (resolved before the call), so this map is bounded by
      // the connector's tool count.
      const max = this.config.perTool.maxConcurrent;
      lane = {
        tool,
        circuit: this.circuit(this.config.perTool.consecutiveFailures, tool),
        bulkhead: max === undefined ? undefined : bulkhead(max, this.config.maxQueue),
      };
      this.lanes.set(tool, lane);
    }
    return lane;
  }

  private circuit(threshold: number, tool: string | undefined): Circuit {
    const counter = new ConsecutiveBreaker(threshold);
    // The filter needs its own policy, which exists only once the filter has been passed in.
    const self: { policy?: CircuitBreakerPolicy } = {};
    const policy = circuitBreaker(
      handleWhen(
        (err) =>
          err instanceof Judged &&
          (err.verdict === "failure" || (self.policy !== undefined && err.probeOf.has(self.policy))),
      ),
      { halfOpenAfter: this.config.breaker.halfOpenAfterMs, breaker: counter },
    );
    self.policy = policy;
    const circuit: Circuit = { policy, counter, openedAt: 0, failuresAtOpen: 0, subscriptions: [] };
    circuit.subscriptions.push(
      policy.onStateChange((state) => {
        if (state === CircuitState.Open) {
          circuit.openedAt = Date.now();
          circuit.failuresAtOpen = counter.state;
        }
        if (this.disposed) return;
        if (tool === undefined)
          this.metrics?.circuitState.set({ connector: this.connector }, metricValue(state));
        const fields = {
          connector: this.connector,
          ...(tool === undefined ? {} : { tool }),
          circuit: stateName(state),
        };
        if (state === CircuitState.Open) {
          const last = policy.lastFailure;
          const cause =
            last && "error" in last && last.error instanceof Judged ? last.error.original : undefined;
          this.logger?.warn(
            {
              ...fields,
              consecutiveFailures: counter.state,
              retryAfterMs: this.config.breaker.halfOpenAfterMs,
              ...(isGatewayError(cause) ? { lastErrorCode: cause.code } : {}),
            },
            "circuit opened: calls fail fast until a trial call succeeds",
          );
        } else {
          this.logger?.info(
            fields,
            state === CircuitState.Closed ? "circuit closed" : "circuit half-open: trial call",
          );
        }
      }),
    );
    return circuit;
  }
}

function stateName(state: CircuitState): CircuitStateName {
  switch (state) {
    case CircuitState.Closed:
      return "closed";
    case CircuitState.HalfOpen:
      return "half-open";
    default:
      return "open";
  }
}

/** portcullis_circuit_state: 0 closed, 1 half-open, 2 open (cockatiel's enum orders them differently). */
function metricValue(state: CircuitState): 0 | 1 | 2 {
  switch (state) {
    case CircuitState.Closed:
      return 0;
    case CircuitState.HalfOpen:
      return 1;
    default:
      return 2;
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function abortError(signal: AbortSignal): GatewayError {
  return isGatewayError(signal.reason)
    ? signal.reason
    : new GatewayError("CANCELLED", "the call was cancelled by the client", { cause: signal.reason });
}

/**
 * Settles with `work` or, as soon as `signal` aborts, with the abort's error. A connector that
 * ignores its signal must not hold a caller, a queue position or a breaker's verdict past the
 * budget; its promise is left to settle on its own.
 */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(abortError(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
