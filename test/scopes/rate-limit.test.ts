import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryRateLimiter, type Bucket } from "../../src/scopes/rate-limit.js";
import { RedisRateLimiter } from "../../src/scopes/rate-limit-redis.js";
import { testLogger } from "../helpers/logger.js";
import { serviceUrl } from "../helpers/services.js";

const bucket = (key: string, limit: number, windowMs: number, capacity = limit): Bucket => ({
  key,
  limit,
  windowMs,
  capacity,
});

describe("in-memory token buckets", () => {
  it("refills evenly and answers how long to wait", async () => {
    let now = 1_000_000;
    const rl = new MemoryRateLimiter(() => now);
    const b = [bucket("t|s|tool|id", 2, 10_000)];
    expect((await rl.take(b)).allowed).toBe(true);
    expect((await rl.take(b)).allowed).toBe(true);
    const refused = await rl.take(b);
    expect(refused).toEqual({ allowed: false, retryAfterMs: 5000, blocked: 0 });
    now += 4999;
    expect((await rl.take(b)).allowed).toBe(false);
    now += 1;
    expect((await rl.take(b)).allowed).toBe(true);
  });

  it("is all-or-nothing across buckets", async () => {
    const now = 0;
    const rl = new MemoryRateLimiter(() => now);
    const tool = bucket("t|s|a|id", 5, 60_000);
    const scope = bucket("s|s|id", 1, 60_000);
    expect((await rl.take([tool, scope])).allowed).toBe(true);
    const refused = await rl.take([tool, scope]);
    expect(refused.allowed).toBe(false);
    expect(refused.blocked).toBe(1);
    // The refused call did not spend the tool bucket: four more fit on their own.
    for (let i = 0; i < 4; i++) expect((await rl.take([tool])).allowed).toBe(true);
    expect((await rl.take([tool])).allowed).toBe(false);
  });
});

const redisUrl = serviceUrl("redis");

describe.skipIf(!redisUrl)("Redis token buckets (shared by replicas)", () => {
  const prefix = `portcullis-test:${randomBytes(6).toString("hex")}:`;
  const replicas = [0, 1].map(
    () => new RedisRateLimiter({ url: redisUrl!, keyPrefix: prefix, logger: testLogger }),
  );
  afterAll(() => Promise.all(replicas.map((r) => r.close())));

  it("shares one limit between two replicas and says when to retry", async () => {
    const b = [bucket("t|ops|orders__get|abc", 3, 60_000)];
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await replicas[i % 2]!.take(b));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(results[3]!.retryAfterMs).toBeGreaterThan(15_000);
    expect(results[3]!.retryAfterMs).toBeLessThanOrEqual(20_000);
    // Another identity has its own bucket.
    expect((await replicas[0]!.take([bucket("t|ops|orders__get|def", 3, 60_000)])).allowed).toBe(true);
  });

  it("is all-or-nothing across a tool and a scope bucket", async () => {
    const tool = bucket("t|ops|x|id2", 5, 60_000);
    const scope = bucket("s|ops|id2", 1, 60_000);
    expect((await replicas[0]!.take([tool, scope])).allowed).toBe(true);
    const refused = await replicas[1]!.take([tool, scope]);
    expect(refused).toMatchObject({ allowed: false, blocked: 1 });
    for (let i = 0; i < 4; i++) expect((await replicas[1]!.take([tool])).allowed).toBe(true);
    expect((await replicas[0]!.take([tool])).allowed).toBe(false);
  });

  it("fails closed with UPSTREAM_UNAVAILABLE when Redis cannot be reached", async () => {
    const dead = new RedisRateLimiter({
      url: "redis://127.0.0.1:1",
      keyPrefix: prefix,
      logger: testLogger,
      commandTimeoutMs: 500,
    });
    await expect(dead.take([bucket("t|x|y|z", 1, 1000)])).rejects.toMatchObject({
      code: "UPSTREAM_UNAVAILABLE",
    });
    await dead.close();
  });
});
