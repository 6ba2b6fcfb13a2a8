import { afterEach, describe, expect, it, vi } from "vitest";
import { GatewayError, type Identity } from "../../src/core/index.js";
import {
  callKey,
  LoopGuard,
  loopGuardSchema,
  loopSubject,
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
