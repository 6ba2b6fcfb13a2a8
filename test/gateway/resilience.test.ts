import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GatewayError } from "../../src/core/index.js";
import {
  classifyFailure,
  isBackendFailure,
  resilienceSchema,
  UpstreamGuard,
  type ResilienceInput,
} from "../../src/gateway/resilience.js";
import { GatewayMetrics } from "../../src/gateway/telemetry.js";
import { testLogger } from "../helpers/logger.js";

/** How the upstream answers a path: a status, a reset socket, silence, or a hold until released. */
type Mode = { status: number } | "reset" | "hang" | "hold";

/**
 * A real upstream that fails on cue. Each path ("/<tool>") has its own mode and request count,
 * so a test can prove that a fail-fast call never reached the server.
 */
class FlakyUpstream {
  private readonly server: Server = createServer((req, res) => this.handle(req.url ?? "/", res));
  private readonly modes = new Map<string, Mode>();
  private readonly counts = new Map<string, number>();
  private held: ServerResponse[] = [];
  base = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  set(tool: string, mode: Mode): void {
    this.modes.set(`/${tool}`, mode);
  }

  count(tool: string): number {
    return this.counts.get(`/${tool}`) ?? 0;
  }

  get holding(): number {
    return this.held.length;
  }

  release(): void {
    for (const res of this.held)
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    this.held = [];
  }

  reset(): void {
    this.release();
    this.modes.clear();
    this.counts.clear();
  }

  private handle(path: string, res: ServerResponse): void {
    this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
    const mode = this.modes.get(path) ?? { status: 200 };
    if (mode === "reset") return void res.socket?.destroy();
    if (mode === "hang") return;
    if (mode === "hold") return void this.held.push(res);
    res.writeHead(mode.status, { "content-type": "application/json", connection: "close" });
    res.end(JSON.stringify(mode.status < 300 ? { ok: true } : { error: `status ${mode.status}` }));
  }
}

const upstream = new FlakyUpstream();
beforeAll(() => upstream.start());
afterAll(() => upstream.stop());

/** What a connector does: a real HTTP call whose failures become GatewayErrors. */
function call(tool: string): (signal: AbortSignal) => Promise<unknown> {
  return async (signal) => {
    let res: Response;
    try {
      res = await fetch(`${upstream.base}/${tool}`, { signal });
    } catch (err) {
      if (signal.aborted) {
        throw signal.reason instanceof GatewayError
          ? signal.reason
          : new GatewayError("UPSTREAM_TIMEOUT", `test: ${tool} cancelled`, { cause: err });
      }
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `test: ${tool} unreachable`, { cause: err });
    }
    const body: unknown = await res.json();
    if (res.status === 422) throw new GatewayError("INVALID_ARGUMENTS", `test: ${tool} rejected its input`);
    if (res.status >= 400) {
      throw new GatewayError("UPSTREAM_ERROR", `test: ${tool} answered HTTP ${res.status}`, {
        details: { status: res.status },
      });
    }
    return body;
  };
}

const never = new AbortController().signal;

/** A call budget, as the gateway gives one: aborts with UPSTREAM_TIMEOUT. */
function budget(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(
    () => controller.abort(new GatewayError("UPSTREAM_TIMEOUT", `test: no answer within ${ms} ms`)),
    ms,
  );
  return controller.signal;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

async function gaugeValues(metrics: GatewayMetrics): Promise<Record<string, number>> {
  const got = await metrics.circuitState.get();
  return Object.fromEntries(got.values.map((v) => [String(v.labels.connector), v.value]));
}

const guards: UpstreamGuard[] = [];
function guard(connector: string, input: ResilienceInput, metrics?: GatewayMetrics): UpstreamGuard {
  const g = new UpstreamGuard(connector, resilienceSchema.parse(input), metrics, testLogger);
  guards.push(g);
  return g;
}

afterEach(() => {
  for (const g of guards.splice(0)) g.dispose();
  upstream.reset();
});

describe("resilience config", () => {
  it("fills every default from an empty block", () => {
    expect(resilienceSchema.parse({})).toEqual({
      maxConcurrent: 32,
      maxQueue: 64,
      perTool: { consecutiveFailures: 3 },
      breaker: { consecutiveFailures: 5, halfOpenAfterMs: 10_000 },
    });
  });

  it("refuses unknown keys and retry settings (connectors retry themselves)", () => {
    expect(resilienceSchema.safeParse({ retry: { attempts: 3 } }).success).toBe(false);
    expect(resilienceSchema.safeParse({ breaker: { threshold: 3 } }).success).toBe(false);
    expect(resilienceSchema.safeParse({ perTool: { maxQueue: 3 } }).success).toBe(false);
    expect(resilienceSchema.safeParse({ maxConcurrent: 0 }).success).toBe(false);
    expect(resilienceSchema.safeParse({ breaker: { halfOpenAfterMs: 1.5 } }).success).toBe(false);
  });
});

describe("which failures count", () => {
  const live = new AbortController().signal;
  it("counts backend conditions only", () => {
    const e = (code: ConstructorParameters<typeof GatewayError>[0], details?: Record<string, unknown>) =>
      new GatewayError(code, "x", details ? { details } : {});
    expect(isBackendFailure(e("UPSTREAM_UNAVAILABLE"))).toBe(true);
    expect(isBackendFailure(e("UPSTREAM_TIMEOUT"))).toBe(true);
    expect(isBackendFailure(e("BUSY"))).toBe(true);
    expect(isBackendFailure(e("UPSTREAM_ERROR", { status: 503 }))).toBe(true);
    expect(isBackendFailure(e("UPSTREAM_ERROR", { httpStatus: 500 }))).toBe(true);
    expect(isBackendFailure(e("UPSTREAM_ERROR", { retryable: true }))).toBe(true);
    expect(isBackendFailure(e("UPSTREAM_ERROR", { status: 429, retryable: true }))).toBe(false);
    expect(isBackendFailure(e("UPSTREAM_ERROR", { status: 404 }))).toBe(false);
    expect(isBackendFailure(e("UPSTREAM_ERROR"))).toBe(false);
    expect(isBackendFailure(e("INVALID_ARGUMENTS"))).toBe(false);
    expect(isBackendFailure(e("UPSTREAM_BAD_RESPONSE"))).toBe(false);
    expect(isBackendFailure(new Error("ECONNRESET"))).toBe(false);
    expect(classifyFailure(e("UPSTREAM_ERROR", { status: 400 }), live)).toBe("answered");
    expect(classifyFailure(e("INVALID_ARGUMENTS"), live)).toBe("answered");
    expect(classifyFailure(e("INTERNAL"), live)).toBe("neutral");
    expect(classifyFailure(new Error("boom"), live)).toBe("neutral");
    expect(classifyFailure(e("CANCELLED"), live)).toBe("neutral");
  });

  it("judges an aborted call by the abort's reason: budget spent counts, a cancellation does not", () => {
    const timedOut = new AbortController();
    timedOut.abort(new GatewayError("UPSTREAM_TIMEOUT", "budget"));
    const cancelled = new AbortController();
    cancelled.abort(new Error("client went away"));
    const reported = new GatewayError("UPSTREAM_UNAVAILABLE", "cancelled before it completed");
    expect(classifyFailure(reported, timedOut.signal)).toBe("failure");
    expect(classifyFailure(reported, cancelled.signal)).toBe("neutral");
  });
});

describe("UpstreamGuard circuit breaker against a real failing HTTP upstream", () => {
  it("opens after N consecutive 503s and then fails fast without the request reaching the server", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const g = guard(
      "orders",
      { breaker: { consecutiveFailures: 3, halfOpenAfterMs: 5_000 }, perTool: { consecutiveFailures: 10 } },
      metrics,
    );
    upstream.set("get_order", { status: 503 });
    for (let i = 0; i < 3; i++) {
      const err = await failure(g.execute("get_order", call("get_order"), never));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.details).toEqual({ status: 503 });
    }
    expect(upstream.count("get_order")).toBe(3);
    expect(g.state()).toBe("open");
    expect((await gaugeValues(metrics))["orders"]).toBe(2);

    // The whole connector is cut off: another tool fails fast too.
    upstream.set("list_orders", { status: 200 });
    for (const tool of ["get_order", "list_orders"]) {
      const err = await failure(g.execute(tool, call(tool), never));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(
        /^connector "orders" is failing \(circuit open after 3 consecutive failures\); retry after [1-5] s$/,
      );
      const retryAfterMs = err.details?.retryAfterMs as number;
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(retryAfterMs).toBeLessThanOrEqual(5_000);
    }
    expect(upstream.count("get_order")).toBe(3);
    expect(upstream.count("list_orders")).toBe(0);
  });

  it("counts reset sockets and spent time budgets as failures", async () => {
    const g = guard("inventory", {
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 5_000 },
      perTool: { consecutiveFailures: 10 },
    });
    upstream.set("reset", "reset");
    upstream.set("hang", "hang");
    expect((await failure(g.execute("reset", call("reset"), never))).code).toBe("UPSTREAM_UNAVAILABLE");
    expect(g.state()).toBe("closed");
    expect((await failure(g.execute("hang", call("hang"), budget(100)))).code).toBe("UPSTREAM_TIMEOUT");
    expect(g.state()).toBe("open");
    expect(upstream.count("reset") + upstream.count("hang")).toBe(2);
  });

  it("frees the caller at its budget even when the connector ignores its signal, and counts it", async () => {
    const g = guard("stubborn", {
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 5_000 },
      perTool: { consecutiveFailures: 10 },
    });
    upstream.set("hang", "hang");
    const deaf = (): Promise<unknown> => fetch(`${upstream.base}/hang`); // no signal on purpose
    const err = await failure(g.execute("hang", deaf, budget(100)));
    expect(err.code).toBe("UPSTREAM_TIMEOUT");
    expect(g.state()).toBe("open");
  });

  it("half-open lets one trial call through; its success closes the circuit", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const g = guard(
      "crm",
      { breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 }, perTool: { consecutiveFailures: 10 } },
      metrics,
    );
    upstream.set("lookup", { status: 500 });
    await failure(g.execute("lookup", call("lookup"), never));
    await failure(g.execute("lookup", call("lookup"), never));
    expect(g.state()).toBe("open");
    expect((await gaugeValues(metrics))["crm"]).toBe(2);

    upstream.set("lookup", "hold");
    await sleep(250);
    const probe = g.execute("lookup", call("lookup"), never);
    expect(g.state()).toBe("half-open");
    expect((await gaugeValues(metrics))["crm"]).toBe(1);
    // While the trial runs, everyone else fails fast.
    const other = await failure(g.execute("lookup", call("lookup"), never));
    expect(other.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(other.message).toContain("half-open");
    expect(other.details?.retryAfterMs).toBeGreaterThan(0);
    await expect.poll(() => upstream.holding).toBe(1);
    upstream.release();
    await expect(probe).resolves.toEqual({ ok: true });
    expect(upstream.count("lookup")).toBe(3);
    expect(g.state()).toBe("closed");
    expect((await gaugeValues(metrics))["crm"]).toBe(0);

    upstream.set("lookup", { status: 200 });
    await expect(g.execute("lookup", call("lookup"), never)).resolves.toEqual({ ok: true });
    expect(upstream.count("lookup")).toBe(4);
  });

  it("a failing trial call re-opens the circuit for another delay", async () => {
    const g = guard("billing", {
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 },
      perTool: { consecutiveFailures: 10 },
    });
    upstream.set("charge", { status: 502 });
    await failure(g.execute("charge", call("charge"), never));
    await failure(g.execute("charge", call("charge"), never));
    await sleep(250);
    const probe = await failure(g.execute("charge", call("charge"), never));
    // The trial's own error is the upstream's, not a circuit refusal.
    expect(probe.code).toBe("UPSTREAM_ERROR");
    expect(upstream.count("charge")).toBe(3);
    expect(g.state()).toBe("open");
    const fast = await failure(g.execute("charge", call("charge"), never));
    expect(fast.message).toMatch(
      /^connector "billing" is failing \(circuit open after 3 consecutive failures\)/,
    );
    expect(upstream.count("charge")).toBe(3);
  });

  it("a cancelled trial call re-opens the circuit instead of closing it untested", async () => {
    const g = guard("ledger", {
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 150 },
      perTool: { consecutiveFailures: 10 },
    });
    upstream.set("post", { status: 503 });
    await failure(g.execute("post", call("post"), never));
    expect(g.state()).toBe("open");
    await sleep(200);
    upstream.set("post", "hang");
    const client = new AbortController();
    const probe = g.execute("post", call("post"), client.signal);
    await expect.poll(() => upstream.count("post")).toBe(2);
    client.abort(new Error("client went away"));
    expect((await failure(probe)).code).toBe("CANCELLED");
    expect(g.state()).toBe("open");
  });

  it("never opens on caller errors (4xx answers, invalid arguments), which also prove the upstream alive", async () => {
    const g = guard("hr", { breaker: { consecutiveFailures: 3, halfOpenAfterMs: 5_000 } });
    upstream.set("find", { status: 400 });
    upstream.set("update", { status: 422 });
    upstream.set("fetch", { status: 404 });
    for (let i = 0; i < 10; i++) {
      for (const tool of ["find", "update", "fetch"]) {
        const err = await failure(g.execute(tool, call(tool), never));
        expect(err.code).toBe(tool === "update" ? "INVALID_ARGUMENTS" : "UPSTREAM_ERROR");
      }
    }
    expect(g.state()).toBe("closed");
    expect(g.toolState("find")).toBe("closed");
    expect(upstream.count("find") + upstream.count("update") + upstream.count("fetch")).toBe(30);

    // Two 503s, an answer, two 503s: never three in a row.
    const seq: Array<[string, number]> = [
      ["a", 503],
      ["b", 503],
      ["c", 404],
      ["a", 503],
      ["b", 503],
    ];
    for (const [tool, status] of seq) {
      upstream.set(tool, { status });
      await failure(g.execute(tool, call(tool), never));
    }
    expect(g.state()).toBe("closed");
  });

  it("a client cancellation is no failure", async () => {
    const g = guard("docs", { breaker: { consecutiveFailures: 2, halfOpenAfterMs: 5_000 } });
    upstream.set("read", "hang");
    for (let i = 0; i < 4; i++) {
      const client = new AbortController();
      const pending = g.execute("read", call("read"), client.signal);
      setTimeout(() => client.abort(new Error("cancelled")), 20);
      expect((await failure(pending)).code).toBe("CANCELLED");
    }
    expect(g.state()).toBe("closed");
    expect(upstream.count("read")).toBe(4);
  });

  it("a per-tool breaker cuts off one broken operation while the connector keeps serving", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const g = guard("shop", {}, metrics); // defaults: tool opens at 3, connector at 5
    upstream.set("broken", { status: 500 });
    upstream.set("healthy", { status: 200 });
    for (let i = 0; i < 3; i++) await failure(g.execute("broken", call("broken"), never));
    expect(g.toolState("broken")).toBe("open");
    expect(g.state()).toBe("closed");
    expect((await gaugeValues(metrics))["shop"]).toBe(0);

    // Hammered alone, the broken tool never reaches the connector's threshold.
    for (let i = 0; i < 5; i++) {
      const err = await failure(g.execute("broken", call("broken"), never));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(
        /^tool "broken" of connector "shop" is failing \(circuit open after 3 consecutive failures\); retry after 10 s$/,
      );
    }
    expect(upstream.count("broken")).toBe(3);
    expect(g.state()).toBe("closed");
    await expect(g.execute("healthy", call("healthy"), never)).resolves.toEqual({ ok: true });
    expect(upstream.count("healthy")).toBe(1);
  });

  it("the connector circuit still opens when failures span its tools", async () => {
    const g = guard("erp", {}); // tool threshold 3, connector threshold 5
    for (const tool of ["a", "b", "c", "d", "e"]) upstream.set(tool, { status: 503 });
    for (const tool of ["a", "b", "c", "a", "b"]) await failure(g.execute(tool, call(tool), never));
    expect(g.toolState("a")).toBe("closed");
    expect(g.state()).toBe("open");
    upstream.set("f", { status: 200 });
    expect((await failure(g.execute("f", call("f"), never))).message).toMatch(/^connector "erp" is failing/);
    expect(upstream.count("f")).toBe(0);
  });
});

describe("UpstreamGuard bulkheads", () => {
  it("answers BUSY when every slot and queue place is taken, while the calls in flight complete", async () => {
    const g = guard("mainframe", { maxConcurrent: 2, maxQueue: 1 });
    upstream.set("status", "hold");
    const admitted = [1, 2, 3].map(() => g.execute("status", call("status"), never));
    await expect.poll(() => upstream.holding).toBe(2);
    const busy = await failure(g.execute("status", call("status"), never));
    expect(busy.code).toBe("BUSY");
    expect(busy.message).toBe('connector "mainframe" has 2 calls in flight and 1 queued; retry shortly');
    expect(busy.details?.retryAfterMs).toBeGreaterThanOrEqual(100);
    expect(upstream.count("status")).toBe(2);

    upstream.release();
    await expect.poll(() => upstream.holding).toBe(1); // the queued call got its slot
    upstream.release();
    await expect(Promise.all(admitted)).resolves.toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(upstream.count("status")).toBe(3);
    // A full bulkhead is our own back-pressure, not the upstream failing.
    expect(g.state()).toBe("closed");
  });

  it("a per-tool bulkhead limits one tool without starving the others", async () => {
    const g = guard("reports", { maxConcurrent: 10, maxQueue: 0, perTool: { maxConcurrent: 1 } });
    upstream.set("export", "hold");
    const first = g.execute("export", call("export"), never);
    await expect.poll(() => upstream.holding).toBe(1);
    const busy = await failure(g.execute("export", call("export"), never));
    expect(busy.message).toBe(
      'tool "export" of connector "reports" has 1 calls in flight and 0 queued; retry shortly',
    );
    await expect(g.execute("summary", call("summary"), never)).resolves.toEqual({ ok: true });
    upstream.release();
    await expect(first).resolves.toEqual({ ok: true });
    expect(upstream.count("export")).toBe(1);
  });

  it("a queued call leaves the queue when its budget runs out, without ever reaching the upstream", async () => {
    const g = guard("queue", { maxConcurrent: 1, maxQueue: 5 });
    upstream.set("slow", "hold");
    const first = g.execute("slow", call("slow"), never);
    await expect.poll(() => upstream.holding).toBe(1);
    const waited = await failure(g.execute("slow", call("slow"), budget(100)));
    expect(waited.code).toBe("UPSTREAM_TIMEOUT");
    upstream.release();
    await expect(first).resolves.toEqual({ ok: true });
    await sleep(50);
    expect(upstream.count("slow")).toBe(1);
  });

  it("an open circuit answers before the bulkhead: the agent hears the real reason, not BUSY", async () => {
    const g = guard("fastfail", {
      maxConcurrent: 1,
      maxQueue: 0,
      breaker: { consecutiveFailures: 5, halfOpenAfterMs: 5_000 },
      perTool: { consecutiveFailures: 1 },
    });
    upstream.set("x", { status: 503 });
    await failure(g.execute("x", call("x"), never));
    expect(g.toolState("x")).toBe("open");
    upstream.set("y", "hold");
    const holder = g.execute("y", call("y"), never);
    await expect.poll(() => upstream.holding).toBe(1);
    const err = await failure(g.execute("x", call("x"), never));
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(upstream.count("x")).toBe(1);
    upstream.release();
    await expect(holder).resolves.toEqual({ ok: true });
  });
});

describe("circuit state metric", () => {
  it("exports 0/1/2 per connector, and a replaced guard keeps its label when the old one is disposed", async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    const a = guard(
      "alpha",
      { breaker: { consecutiveFailures: 1, halfOpenAfterMs: 5_000 }, perTool: { consecutiveFailures: 10 } },
      metrics,
    );
    guard("beta", {}, metrics);
    upstream.set("x", { status: 503 });
    await failure(a.execute("x", call("x"), never));
    expect(await gaugeValues(metrics)).toEqual({ alpha: 2, beta: 0 });
    const rendered = (await metrics.render()).body;
    expect(rendered).toContain('portcullis_circuit_state{connector="alpha"} 2');

    const replacement = guard("alpha", {}, metrics);
    a.dispose();
    expect(await gaugeValues(metrics)).toEqual({ alpha: 0, beta: 0 });
    replacement.dispose();
    expect(await gaugeValues(metrics)).toEqual({ beta: 0 });
  });
});
