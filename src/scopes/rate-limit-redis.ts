import { createRequire } from "node:module";
import type * as IoRedis from "ioredis";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { GatewayError } from "../core/index.js";
import type { Bucket, RateLimiter, TakeResult } from "./rate-limit.js";

/**
 * All-or-nothing token buckets in one script, on the Redis server's clock, so every replica
 * shares one limit and clock skew between replicas does not matter.
 * ARGV per bucket: capacity, rate (tokens per millisecond).
 */
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local levels = {}
local wait, blocked = 0, 0
for i = 1, n do
  local cap = tonumber(ARGV[(i - 1) * 2 + 1])
  local rate = tonumber(ARGV[(i - 1) * 2 + 2])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(v[1])
  local at = tonumber(v[2])
  if tokens == nil or at == nil then
    tokens = cap
  elseif now > at then
    tokens = math.min(cap, tokens + (now - at) * rate)
  end
  levels[i] = tokens
  if tokens < 1 then
    local w = math.max(1, math.ceil((1 - tokens) / rate))
    if blocked == 0 or w > wait then wait, blocked = w, i end
  end
end
if blocked > 0 then return {0, wait, blocked} end
for i = 1, n do
  local cap = tonumber(ARGV[(i - 1) * 2 + 1])
  local rate = tonumber(ARGV[(i - 1) * 2 + 2])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
end
return {1, 0, 0}
`;

type TakeCommand = (
  numKeys: number,
  ...keysAndArgs: (string | number)[]
) => Promise<[number, number, number]>;

export interface RedisRateLimiterOptions {
  url: string;
  /** Prefix for every key, so several gateways can share one Redis. */
  keyPrefix: string;
  logger: Logger;
  /** How long a take may wait for Redis, in milliseconds, before the call is refused. */
  commandTimeoutMs?: number;
}

/** Shared rate-limit state for a fleet of replicas. When Redis is unreachable, calls are refused (fail closed). */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(private readonly opts: RedisRateLimiterOptions) {
    this.prefix = opts.keyPrefix;
    // Loaded only when Redis rate limits are configured: most gateways never need the client.
    const { Redis: RedisClient } = createRequire(import.meta.url)("ioredis") as typeof IoRedis;
    this.redis = new RedisClient(opts.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
    });
    this.redis.on("error", (err: Error) =>
      opts.logger.warn({ err: err.message }, "rate-limit redis connection error"),
    );
    this.redis.defineCommand("portcullisTake", { lua: TAKE_SCRIPT });
  }

  async take(buckets: readonly Bucket[]): Promise<TakeResult> {
    if (buckets.length === 0) return { allowed: true, retryAfterMs: 0 };
    // One hash tag for all of a call's buckets keeps the script valid on Redis Cluster.
    const tag = buckets[0]!.key.split("|").at(-1) ?? "";
    const keys = buckets.map((b) => `${this.prefix}{${tag}}:${b.key}`);
    const args = buckets.flatMap((b) => [b.capacity, b.limit / b.windowMs]);
    try {
      const take = (this.redis as unknown as { portcullisTake: TakeCommand }).portcullisTake.bind(this.redis);
      const [allowed, wait, blocked] = await take(keys.length, ...keys, ...args);
      return allowed === 1
        ? { allowed: true, retryAfterMs: 0 }
        : { allowed: false, retryAfterMs: Number(wait), blocked: Number(blocked) - 1 };
    } catch (err) {
      throw new GatewayError("UPSTREAM_UNAVAILABLE", "rate-limit store (redis) is unavailable; retry later", {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === "end") return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
