/** One token bucket to take from: `capacity` tokens, refilled evenly at `limit` per `windowMs`. */
export interface Bucket {
  readonly key: string;
  readonly capacity: number;
  readonly limit: number;
  readonly windowMs: number;
}

export interface TakeResult {
  readonly allowed: boolean;
  /** Milliseconds until the blocking bucket holds a token again (0 when allowed). */
  readonly retryAfterMs: number;
  /** Index of the bucket that refused, when one did. */
  readonly blocked?: number;
}

/**
 * Rate-limit state. `take` is all-or-nothing over its buckets (a tool bucket and a scope bucket),
 * so a call refused by one limit does not spend a token from the other.
 */
export interface RateLimiter {
  take(buckets: readonly Bucket[]): Promise<TakeResult>;
  close(): Promise<void>;
}

interface State {
  tokens: number;
  at: number;
  fullAt: number;
}

/** Entries between sweeps of buckets that have refilled completely (and so carry no state). */
const SWEEP_EVERY = 1000;

/** The single-machine default: token buckets in this process's memory. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, State>();
  private takes = 0;

  constructor(private readonly now: () => number = Date.now) {}

  take(buckets: readonly Bucket[]): Promise<TakeResult> {
    const now = this.now();
    if (++this.takes % SWEEP_EVERY === 0) this.sweep(now);
    const levels = buckets.map((b) => {
      const rate = b.limit / b.windowMs;
      const s = this.buckets.get(b.key);
      const tokens =
        s === undefined ? b.capacity : Math.min(b.capacity, s.tokens + Math.max(0, now - s.at) * rate);
      return { tokens, rate };
    });
    let wait = 0;
    let blocked: number | undefined;
    levels.forEach((l, i) => {
      if (l.tokens < 1) {
        const w = Math.ceil((1 - l.tokens) / l.rate);
        if (w > wait || blocked === undefined) {
          wait = Math.max(1, w);
          blocked = i;
        }
      }
    });
    if (blocked !== undefined) return Promise.resolve({ allowed: false, retryAfterMs: wait, blocked });
    buckets.forEach((b, i) => {
      const l = levels[i]!;
      const tokens = l.tokens - 1;
      this.buckets.set(b.key, { tokens, at: now, fullAt: now + Math.ceil((b.capacity - tokens) / l.rate) });
    });
    return Promise.resolve({ allowed: true, retryAfterMs: 0 });
  }

  private sweep(now: number): void {
    for (const [key, s] of this.buckets) if (s.fullAt <= now) this.buckets.delete(key);
  }

  close(): Promise<void> {
    this.buckets.clear();
    return Promise.resolve();
  }
}
