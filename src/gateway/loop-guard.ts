import { hash } from "node:crypto";
import type { Logger } from "pino";
import { z } from "zod";
import { GatewayError, safeJson, type Identity } from "../core/index.js";
import { canonicalJson } from "../audit/record.js";

/** `limits.loopGuard` in mcp.config.json. */
export const loopGuardSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe("Refuse an identity's identical calls (same tool, same arguments) repeated too often."),
    maxRepeats: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(5)
      .describe(
        "Identical calls allowed per window; the next one within the window is refused (DENIED_LOOP).",
      ),
    windowSec: z.number().int().min(1).max(86_400).default(60).describe("The sliding window, in seconds."),
    maxTrackedCalls: z
      .number()
      .int()
      .min(100)
      .max(10_000_000)
      .default(100_000)
      .describe(
        "Distinct (identity, tool, arguments) combinations remembered at most; the least recently used is forgotten first. Bounds memory: about 110 bytes per key called once, 320 per key called again (11 MB at the default when the calls are distinct).",
      ),
  })
  .strict()
  .describe("Loop guard: catches agents stuck repeating the same call.");

export type LoopGuardConfig = z.output<typeof loopGuardSchema>;

export interface LoopGuardOptions {
  logger?: Logger;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

/** Proof that `check` counted a call; hand it to `release` when the call should not count after all. */
export interface LoopTicket {
  readonly key: string;
  readonly at: number;
}

/**
 * A combination called more than once in the window: the times of its last allowed calls,
 * oldest first, in a fixed ring.
 */
interface Repeated {
  readonly times: number[];
  /** Index of the oldest time. */
  head: number;
  count: number;
  /** Its record in the use queue (see LoopGuard). */
  seq: number;
}

/** Expired keys removed per call, so cleaning up never costs a call more than a constant. */
const SWEEP_PER_CALL = 4;
/** Superseded queue records skipped per call at most (they are skipped for free later). */
const SKIP_PER_CALL = 32;
/** Slack before the use queue is compacted (see `compact`). */
const QUEUE_SLACK = 4_096;

/**
 * Refuses the same identity calling the same tool with the same canonical arguments more than
 * `maxRepeats` times in any `windowSec` window: an agent stuck in a loop spends upstream capacity
 * and budget while making no progress. Refused calls are not counted, so `retryAfterMs` is exact.
 *
 * O(1) per call, and small: under load almost every key is called once, so a key called once is
 * only a Map entry from its key to a sequence number; a ring of times is kept only for keys
 * called again (`Repeated`). The order of last use is a queue of records (key, time of the call)
 * numbered by that sequence: using a key appends a record and supersedes the key's previous one.
 * The front of the queue is the least recently used key, swept of expired keys a few per call
 * and capped at `maxTrackedCalls`: about 110 bytes per key called once and 320 per key called
 * again (263 for every key when each kept a ring and list links). Under a flood of distinct calls
 * the cap may forget a key early; the guard then fails open, which is acceptable for a loop
 * detector (rate limits are the hard ceiling).
 */
export class LoopGuard {
  /** Keys called once in the window → the sequence number of their record. */
  private readonly once = new Map<string, number>();
  private readonly repeated = new Map<string, Repeated>();
  /** The use queue: record `seq` is at index `seq - base`; records before `front` are gone. */
  private queueKeys: string[] = [];
  /** The time of the key's call (once) when the record was written; unboxed doubles. */
  private queueTimes: number[] = [];
  private base = 0;
  private front = 0;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private lastEvictionWarning = -Infinity;

  constructor(
    private readonly config: LoopGuardConfig,
    options: LoopGuardOptions = {},
  ) {
    this.windowMs = config.windowSec * 1000;
    this.now = options.now ?? (() => performance.now());
    this.logger = options.logger;
  }

  /** Keys currently remembered (for tests and diagnostics). */
  get size(): number {
    return this.once.size + this.repeated.size;
  }

  /** Records in the use queue, current and superseded (for tests and diagnostics). */
  get queued(): number {
    return this.queueKeys.length - this.front;
  }

  /**
   * Counts this call, or throws DENIED_LOOP when it would be one repetition too many. `subject`
   * must identify the caller uniquely (see `loopSubject`).
   */
  check(subject: string, tool: string, args: Record<string, unknown>): LoopTicket | undefined {
    if (!this.config.enabled) return undefined;
    const now = this.now();
    this.sweep(now);
    const key = callKey(subject, tool, args);
    const cap = this.config.maxRepeats;
    const entry = this.repeated.get(key);
    if (entry) {
      entry.seq = this.push(key, 0);
      if (entry.count === cap) {
        const oldest = entry.times[entry.head]!;
        if (oldest > now - this.windowMs) this.refuse(subject, tool, key, oldest, now);
        entry.times[entry.head] = now;
        entry.head = (entry.head + 1) % cap;
      } else {
        entry.times[(entry.head + entry.count) % cap] = now;
        entry.count++;
      }
    } else {
      const seq = this.once.get(key);
      const first = seq === undefined ? undefined : this.queueTimes[seq - this.base]!;
      if (first === undefined || first <= now - this.windowMs) {
        // New, or its only call has left the window: a first call again.
        this.once.set(key, this.push(key, now));
      } else if (cap === 1) {
        this.once.set(key, this.push(key, first));
        this.refuse(subject, tool, key, first, now);
      } else {
        this.once.delete(key);
        const times = new Array<number>(cap).fill(0);
        times[0] = first;
        times[1] = now;
        this.repeated.set(key, { times, head: 0, count: 2, seq: this.push(key, 0) });
      }
    }
    this.enforceCap(now);
    return { key, at: now };
  }

  /**
   * Un-counts a call that did not really happen (refused later in the pipeline, failed fast,
   * upstream busy), so an agent that follows our "retry after" advice is not taken for a loop.
   */
  release(ticket: LoopTicket | undefined): void {
    if (!ticket) return;
    const seq = this.once.get(ticket.key);
    if (seq !== undefined) {
      if (this.queueTimes[seq - this.base] === ticket.at) this.once.delete(ticket.key);
      return;
    }
    const entry = this.repeated.get(ticket.key);
    if (!entry) return;
    const cap = this.config.maxRepeats;
    // Newest first: the ticket is almost always the latest call.
    for (let i = entry.count - 1; i >= 0; i--) {
      if (entry.times[(entry.head + i) % cap] !== ticket.at) continue;
      for (let j = i; j < entry.count - 1; j++) {
        entry.times[(entry.head + j) % cap] = entry.times[(entry.head + j + 1) % cap]!;
      }
      entry.count--;
      if (entry.count === 0) this.repeated.delete(ticket.key);
      return;
    }
  }

  private refuse(subject: string, tool: string, key: string, oldest: number, now: number): never {
    const cap = this.config.maxRepeats;
    const retryAfterMs = Math.max(1, Math.ceil(oldest + this.windowMs - now));
    this.logger?.warn(
      { subject, tool, callKey: printableKey(key), repeats: cap, windowSec: this.config.windowSec },
      "loop guard refused a repeated call",
    );
    throw new GatewayError(
      "DENIED_LOOP",
      `${tool} refused: the same call was made ${cap} times in ${this.config.windowSec} s; the agent may be stuck in a loop — change the arguments or stop (the same call is allowed again in ${Math.ceil(retryAfterMs / 1000)} s)`,
      { details: { retryAfterMs } },
    );
  }

  /** Appends a use record for `key` and returns its sequence number. */
  private push(key: string, time: number): number {
    if (this.queueKeys.length - this.front > 2 * this.size + QUEUE_SLACK) this.compact();
    this.queueKeys.push(key);
    this.queueTimes.push(time);
    return this.base + this.queueKeys.length - 1;
  }

  /**
   * The least recently used key's record, after skipping superseded records at the front:
   * `once` for a key called once, its entry for a repeated key; undefined when the queue is empty
   * or the skip budget ran out.
   */
  private oldest(skips: number): { key: string; time: number; entry: Repeated | undefined } | undefined {
    for (; this.front < this.queueKeys.length; this.drop()) {
      const key = this.queueKeys[this.front]!;
      const seq = this.base + this.front;
      if (this.once.get(key) === seq) return { key, time: this.queueTimes[this.front]!, entry: undefined };
      const entry = this.repeated.get(key);
      if (entry?.seq === seq) return { key, time: newest(entry, this.config.maxRepeats), entry };
      if (--skips < 0) return undefined;
    }
    return undefined;
  }

  /** Forgets the front record (its key, if it was the key's current record, is removed by the caller). */
  private drop(): void {
    this.queueKeys[this.front] = "";
    this.front++;
    if (this.front >= QUEUE_SLACK && this.front * 2 >= this.queueKeys.length) {
      this.queueKeys.splice(0, this.front);
      this.queueTimes.splice(0, this.front);
      this.base += this.front;
      this.front = 0;
    }
  }

  private forget(oldest: { key: string; entry: Repeated | undefined }): void {
    if (oldest.entry) this.repeated.delete(oldest.key);
    else this.once.delete(oldest.key);
    this.drop();
  }

  /** Drops keys at the least recently used end whose newest call has left the window. */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CALL; i++) {
      const oldest = this.oldest(SKIP_PER_CALL);
      if (!oldest || oldest.time > now - this.windowMs) return;
      this.forget(oldest);
    }
  }

  private enforceCap(now: number): void {
    while (this.size > this.config.maxTrackedCalls) {
      const victim = this.oldest(Infinity);
      if (!victim) return;
      this.forget(victim);
      if (victim.time > now - this.windowMs && now - this.lastEvictionWarning > 60_000) {
        this.lastEvictionWarning = now;
        this.logger?.warn(
          { maxTrackedCalls: this.config.maxTrackedCalls },
          "loop guard is tracking its maximum of distinct calls; the least recently used are forgotten early",
        );
      }
    }
  }

  /**
   * Rewrites the queue with only the current records, in order (superseded records between
   * current ones are not reached by the front until the window passes; a looping agent being
   * refused writes one per call). Runs when the queue is twice the keys plus slack: amortised O(1).
   */
  private compact(): void {
    const keys: string[] = [];
    const times: number[] = [];
    for (let i = this.front; i < this.queueKeys.length; i++) {
      const key = this.queueKeys[i]!;
      const seq = this.base + i;
      const next = this.base + keys.length;
      if (this.once.get(key) === seq) this.once.set(key, next);
      else {
        const entry = this.repeated.get(key);
        if (entry?.seq !== seq) continue;
        entry.seq = next;
      }
      keys.push(key);
      times.push(this.queueTimes[i]!);
    }
    this.queueKeys = keys;
    this.queueTimes = times;
    this.front = 0;
  }
}

function newest(entry: Repeated, cap: number): number {
  return entry.count === 0 ? -Infinity : entry.times[(entry.head + entry.count - 1) % cap]!;
}

/**
 * The caller as the loop guard keys it: the subject qualified by its issuer, so equal `sub`
 * values from two identity providers are two callers.
 */
export function loopSubject(identity: Identity): string {
  return JSON.stringify([identity.source, identity.issuer ?? "", identity.subject]);
}

/** SHA-256 of the RFC 8785 canonical form: key order and number spelling do not make a call "new". */
export function callKey(subject: string, tool: string, args: Record<string, unknown>): string {
  let canonical: string | undefined;
  try {
    // The audit log's RFC 8785 serialiser: same output as the canonicalize package, several times faster.
    canonical = canonicalJson([subject, tool, args]);
  } catch {
    // Arguments reach us as parsed JSON, so this is defensive: never let the guard break a call.
    canonical = undefined;
  }
  // The digest's 32 bytes as a one-byte string ("binary" is latin1): 32 characters, not base64url's
  // 43. One is kept per key; a key is printed only in a rare log line (`printableKey`).
  return hash("sha256", canonical ?? safeJson([subject, tool, args]), "binary");
}

/** A call key as it appears in logs: base64url. */
export function printableKey(key: string): string {
  return Buffer.from(key, "latin1").toString("base64url");
}
