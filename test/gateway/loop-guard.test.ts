import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { GatewayError, type Identity } from "../../src/core/index.js";
import {
  callKey,
  LoopGuard,
  loopGuardSchema,
  loopSubject,
  printableKey,
  type LoopGuardConfig,
} from "../../src/gateway/loop-guard.js";

/** A guard on a clock the test moves by hand. */
function clocked(config: Partial<LoopGuardConfig> = {}): { guard: LoopGuard; advance: (ms: number) => void } {
  let now = 1_000_000;
  const guard = new LoopGuard(loopGuardSchema.parse(config), { now: () => now });
  return { guard, advance: (ms) => void (now += ms) };
}

function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error("expected DENIED_LOOP, the call was allowed");
}

describe("loop guard config", () => {
  it("defaults to 5 identical calls per 60 s, on", () => {
    expect(loopGuardSchema.parse({})).toEqual({
      enabled: true,
      maxRepeats: 5,
      windowSec: 60,
      maxTrackedCalls: 100_000,
    });
  });

  it("refuses unknown keys and nonsense values", () => {
    expect(loopGuardSchema.safeParse({ maxRepeat: 5 }).success).toBe(false);
    expect(loopGuardSchema.safeParse({ maxRepeats: 0 }).success).toBe(false);
    expect(loopGuardSchema.safeParse({ windowSec: 0.5 }).success).toBe(false);
    expect(loopGuardSchema.safeParse({ maxTrackedCalls: 10 }).success).toBe(false);
  });
});

describe("LoopGuard", () => {
  it("refuses the N+1th identical call within the window, saying when it is allowed again", () => {
    const { guard, advance } = clocked({ maxRepeats: 5, windowSec: 60 });
    const args = { orderId: "A-1", include: ["lines"] };
    for (let i = 0; i < 5; i++) {
      guard.check("alice", "orders__get_order", args);
      advance(1_000);
    }
    const err = refusal(() => guard.check("alice", "orders__get_order", args));
    expect(err.code).toBe("DENIED_LOOP");
    expect(err.message).toBe(
      "orders__get_order refused: the same call was made 5 times in 60 s; the agent may be stuck in a loop — change the arguments or stop (the same call is allowed again in 55 s)",
    );
    // The first of the five was 5 s ago: it leaves the window in 55 s.
    expect(err.details).toEqual({ retryAfterMs: 55_000 });
  });

  it("treats key order and number spelling as the same call (RFC 8785)", () => {
    const { guard } = clocked({ maxRepeats: 2 });
    guard.check("alice", "t", { a: 1, b: { c: [1, 2], d: 10 } });
    guard.check("alice", "t", JSON.parse('{"b":{"d":1e1,"c":[1.0,2]},"a":1}') as Record<string, unknown>);
    expect(refusal(() => guard.check("alice", "t", { b: { d: 10, c: [1, 2] }, a: 1 })).code).toBe(
      "DENIED_LOOP",
    );
    expect(callKey("alice", "t", { a: 1, b: 2 })).toBe(callKey("alice", "t", { b: 2, a: 1 }));
  });

  it("does not affect other arguments, tools or identities", () => {
    const { guard } = clocked({ maxRepeats: 2 });
    const args = { q: "x" };
    guard.check("alice", "t", args);
    guard.check("alice", "t", args);
    expect(() => guard.check("alice", "t", args)).toThrow(GatewayError);
    guard.check("alice", "t", { q: "y" });
    guard.check("alice", "u", args);
    guard.check("bob", "t", args);
    // No field boundary games: ("a|b", "c") and ("a", "b|c") are different callers/tools.
    expect(callKey("a|b", "c", {})).not.toBe(callKey("a", "b|c", {}));
    expect(callKey("alice", "t", { q: "x" })).not.toBe(callKey("alice", "t", { q: "x", extra: null }));
  });

  it("is a sliding window: each call leaves it windowSec after it was made", () => {
    const { guard, advance } = clocked({ maxRepeats: 3, windowSec: 10 });
    guard.check("s", "t", {}); // t=0
    advance(4_000);
    guard.check("s", "t", {}); // t=4
    advance(4_000);
    guard.check("s", "t", {}); // t=8
    advance(1_999);
    expect(refusal(() => guard.check("s", "t", {})).details).toEqual({ retryAfterMs: 1 });
    advance(1); // t=10: the first call has left the window
    guard.check("s", "t", {});
    expect(refusal(() => guard.check("s", "t", {})).details).toEqual({ retryAfterMs: 4_000 });
    advance(4_000);
    guard.check("s", "t", {});
  });

  it("does not count refused calls, so an agent that waits as told gets through", () => {
    const { guard, advance } = clocked({ maxRepeats: 1, windowSec: 60 });
    guard.check("s", "t", {});
    for (let i = 0; i < 50; i++) {
      advance(1_000);
      expect(() => guard.check("s", "t", {})).toThrow(GatewayError);
    }
    advance(10_000);
    guard.check("s", "t", {});
  });

  it("release un-counts a call that did not really happen", () => {
    const { guard, advance } = clocked({ maxRepeats: 2 });
    guard.check("s", "t", {});
    advance(10);
    const ticket = guard.check("s", "t", {});
    guard.release(ticket);
    advance(10);
    guard.check("s", "t", {});
    expect(() => guard.check("s", "t", {})).toThrow(GatewayError);
    guard.release(undefined);
    // Releasing twice is harmless.
    guard.release(ticket);
    expect(() => guard.check("s", "t", {})).toThrow(GatewayError);
  });

  it("works on vitest's fake clock too (default clock is performance.now)", () => {
    vi.useFakeTimers();
    try {
      const guard = new LoopGuard(loopGuardSchema.parse({ maxRepeats: 1, windowSec: 5 }));
      guard.check("s", "t", {});
      expect(() => guard.check("s", "t", {})).toThrow(GatewayError);
      vi.advanceTimersByTime(5_000);
      guard.check("s", "t", {});
    } finally {
      vi.useRealTimers();
    }
  });

  it("logs a refusal with the call key in base64url, never the arguments", () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const guard = new LoopGuard(loopGuardSchema.parse({ maxRepeats: 1 }), { logger });
    const args = { card: "4111 1111 1111 1111" };
    guard.check("alice", "t", args);
    expect(() => guard.check("alice", "t", args)).toThrow(GatewayError);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: "loop guard refused a repeated call",
      subject: "alice",
      tool: "t",
    });
    expect(lines[0]!.callKey).toBe(printableKey(callKey("alice", "t", args)));
    expect(lines[0]!.callKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(lines)).not.toContain("4111");
  });

  it("does nothing when disabled", () => {
    const { guard } = clocked({ enabled: false, maxRepeats: 1 });
    for (let i = 0; i < 10; i++) expect(guard.check("s", "t", {})).toBeUndefined();
    expect(guard.size).toBe(0);
  });
});

describe("LoopGuard memory", () => {
  afterEach(() => vi.useRealTimers());

  it("never tracks more than maxTrackedCalls keys, forgetting the least recently used", () => {
    const { guard } = clocked({ maxRepeats: 1, maxTrackedCalls: 100 });
    guard.check("looping", "t", {});
    for (let i = 0; i < 99; i++) guard.check("s", "t", { i });
    expect(guard.size).toBe(100);
    // Still remembered, and touching it makes it the most recently used.
    expect(() => guard.check("looping", "t", {})).toThrow(GatewayError);
    for (let i = 99; i < 198; i++) guard.check("s", "t", { i });
    expect(guard.size).toBe(100);
    expect(() => guard.check("looping", "t", {})).toThrow(GatewayError);
    for (let i = 0; i < 10_000; i++) guard.check("s", "flood", { i });
    expect(guard.size).toBe(100);
    // Flooded out: forgotten, so allowed again (the guard fails open, rate limits are the ceiling).
    guard.check("looping", "t", {});
  });

  it("counts a repeated key's every call as a use, so a key in a loop stays remembered", () => {
    const { guard } = clocked({ maxRepeats: 3, maxTrackedCalls: 100 });
    guard.check("looping", "t", {});
    guard.check("looping", "t", {});
    for (let i = 0; i < 99; i++) guard.check("s", "t", { i });
    expect(guard.size).toBe(100);
    guard.check("looping", "t", {}); // now the most recently used
    for (let i = 99; i < 198; i++) guard.check("s", "t", { i });
    expect(guard.size).toBe(100);
    expect(refusal(() => guard.check("looping", "t", {})).code).toBe("DENIED_LOOP");
  });

  it("drops keys whose calls have left the window, a few per call", () => {
    const { guard, advance } = clocked({ maxRepeats: 3, windowSec: 1 });
    for (let i = 0; i < 1_000; i++) guard.check("s", "t", { i });
    expect(guard.size).toBe(1_000);
    advance(1_000);
    for (let i = 0; i < 300; i++) guard.check("fresh", "t", { i });
    // Each call sweeps up to 4 expired keys: 300 calls remove all 1,000 old ones.
    expect(guard.size).toBe(300);
  });
});

/**
 * The rule as plainly as it can be written: every allowed call's time per key, all kept, and a
 * call is refused when `maxRepeats` allowed calls of its key are already inside the window.
 */
class ReferenceGuard {
  private readonly calls = new Map<string, number[]>();
  constructor(
    private readonly maxRepeats: number,
    private readonly windowMs: number,
  ) {}

  check(key: string, now: number): { at: number } | { retryAfterMs: number } {
    const times = this.calls.get(key) ?? [];
    const inWindow = times.filter((t) => t > now - this.windowMs);
    if (inWindow.length >= this.maxRepeats) {
      const oldestCounted = inWindow[inWindow.length - this.maxRepeats]!;
      return { retryAfterMs: Math.max(1, Math.ceil(oldestCounted + this.windowMs - now)) };
    }
    times.push(now);
    this.calls.set(key, times);
    return { at: now };
  }

  release(key: string, at: number): void {
    const times = this.calls.get(key);
    const i = times?.lastIndexOf(at) ?? -1;
    if (i >= 0) times!.splice(i, 1);
  }
}

/** A small deterministic generator (mulberry32), so a failure names a seed that reproduces it. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe("LoopGuard against the plain rule", () => {
  for (const [seed, maxRepeats] of [
    [1, 1],
    [2, 2],
    [3, 3],
    [4, 5],
    [5, 2],
  ] as const) {
    it(`decides every call as the reference does (seed ${seed}, maxRepeats ${maxRepeats})`, () => {
      const rnd = random(seed);
      const { guard, advance } = clocked({ maxRepeats, windowSec: 1, maxTrackedCalls: 1_000_000 });
      const reference = new ReferenceGuard(maxRepeats, 1_000);
      let now = 1_000_000;
      const tickets: { args: { k: number }; at: number; ticket: ReturnType<LoopGuard["check"]> }[] = [];
      let refused = 0;
      let allowed = 0;
      let maxQueued = 0;
      for (let op = 0; op < 40_000; op++) {
        // Bursts on one key with a nearly still clock (a looping agent: enough refusals within
        // the window that the use queue must compact itself), and spells of many keys.
        const burst = op % 10_000 < 5_000;
        const args = { k: burst ? 0 : Math.floor(rnd() * 12) };
        const step = burst ? (rnd() < 0.9 ? 0 : 1) : Math.floor(rnd() * 120);
        advance(step);
        now += step;
        if (!burst && rnd() < 0.15 && tickets.length > 0) {
          const t = tickets.splice(Math.floor(rnd() * tickets.length), 1)[0]!;
          guard.release(t.ticket);
          reference.release(JSON.stringify(t.args), t.at);
          continue;
        }
        const expected = reference.check(JSON.stringify(args), now);
        let got: { at: number } | { retryAfterMs: number };
        try {
          const ticket = guard.check("agent", "t", args);
          tickets.push({ args, at: now, ticket });
          if (tickets.length > 50) tickets.shift();
          got = { at: ticket!.at };
          allowed++;
        } catch (err) {
          got = (err as GatewayError).details as { retryAfterMs: number };
          refused++;
        }
        maxQueued = Math.max(maxQueued, guard.queued);
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          expect({ op, args, got }).toEqual({ op, args, got: expected });
        }
      }
      // Both outcomes were exercised, and the refused bursts made the queue compact itself.
      expect(refused).toBeGreaterThan(1_000);
      expect(allowed).toBeGreaterThan(1_000);
      expect(maxQueued).toBeGreaterThan(4_096);
      expect(maxQueued).toBeLessThanOrEqual(2 * 12 + 4_096 + 1);
    });
  }

  it("keeps its use queue bounded while a looping agent is refused over and over", () => {
    const { guard, advance } = clocked({ maxRepeats: 1, windowSec: 3_600 });
    guard.check("other", "t", {}); // the least recently used key: it holds the queue's front
    guard.check("looping", "t", {});
    let refused = 0;
    let maxQueued = 0;
    for (let i = 0; i < 20_000; i++) {
      try {
        guard.check("looping", "t", {});
      } catch (err) {
        if ((err as GatewayError).code === "DENIED_LOOP") refused++;
      }
      maxQueued = Math.max(maxQueued, guard.queued);
      advance(1);
    }
    expect(refused).toBe(20_000);
    expect(guard.size).toBe(2);
    expect(maxQueued).toBe(2 * 2 + 4_096 + 1);
    // Compaction kept both keys and their first calls' times.
    expect(refusal(() => guard.check("other", "t", {})).details).toEqual({
      retryAfterMs: 3_600_000 - 20_000,
    });
    expect(refusal(() => guard.check("looping", "t", {})).details).toEqual({
      retryAfterMs: 3_600_000 - 20_000,
    });
  });
});

describe("loopSubject", () => {
  const who = (over: Partial<Identity>): Identity => ({
    subject: "alice",
    scopes: [],
    claims: {},
    source: "jwt",
    ...over,
  });

  it("keeps equal subjects from different issuers apart", () => {
    expect(loopSubject(who({ issuer: "https://idp-a" }))).not.toBe(
      loopSubject(who({ issuer: "https://idp-b" })),
    );
    expect(loopSubject(who({ source: "local" }))).not.toBe(loopSubject(who({})));
    expect(loopSubject(who({ issuer: "https://idp-a" }))).toBe(loopSubject(who({ issuer: "https://idp-a" })));
  });
});
