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
        "Distinct (identity, tool, arguments) combinations remembered at most; the least recently used is forgotten first. Bounds memory (about 300 bytes each: 30 MB at the default).",
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
 * One (caller, tool, arguments) combination: the times of its last allowed calls, oldest first,
 * in a fixed ring, and its place in the least-recently-used list.
 */
interface Entry {
  readonly key: string;
  readonly times: number[];
  /** Index of the oldest time. */
  head: number;
  count: number;
  /** Toward the least recently used end. */
  older: Entry | undefined;
  /** Toward the most recently used end. */
  newer: Entry | undefined;
}

/** Expired entries removed per call, so cleaning up never costs a call more than a constant. */
const SWEEP_PER_CALL = 4;

/**
 * Refuses the same identity calling the same tool with the same canonical arguments more than
 * `maxRepeats` times in any `windowSec` window: an agent stuck in a loop spends upstream capacity
 * and budget while making no progress. Refused calls are not counted, so `retryAfterMs` is exact.
 *
 * O(1) per call: a Map from key to entry plus a doubly linked list in order of last use (a Map's
 * own insertion order would do, but V8 makes reading its front slow after many deletions). The
 * least recently used end is swept of expired keys a few per call and capped at
 * `maxTrackedCalls`. Under a flood of distinct calls the cap may forget a key early; the guard
 * then fails open, which is acceptable for a loop detector (rate limits are the hard ceiling).
 */
export class LoopGuard {
  private readonly entries = new Map<string, Entry>();
  private oldest: Entry | undefined;
  private newest: Entry | undefined;
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
    return this.entries.size;
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
    let entry = this.entries.get(key);
    if (entry) {
      this.unlink(entry);
    } else {
      entry = {
        key,
        times: new Array<number>(cap).fill(0),
        head: 0,
        count: 0,
        older: undefined,
        newer: undefined,
      };
      this.entries.set(key, entry);
    }
    this.linkNewest(entry);
    if (entry.count === cap) {
      const oldest = entry.times[entry.head]!;
      if (oldest > now - this.windowMs) {
        const retryAfterMs = Math.max(1, Math.ceil(oldest + this.windowMs - now));
        this.logger?.warn(
          { subject, tool, callKey: key, repeats: cap, windowSec: this.config.windowSec },
          "loop guard refused a repeated call",
        );
        throw new GatewayError(
          "DENIED_LOOP",
          `${tool} refused: the same call was made ${cap} times in ${this.config.windowSec} s; the agent may be stuck in a loop — change the arguments or stop (the same call is allowed again in ${Math.ceil(retryAfterMs / 1000)} s)`,
          { details: { retryAfterMs } },
        );
      }
      entry.times[entry.head] = now;
      entry.head = (entry.head + 1) % cap;
    } else {
      entry.times[(entry.head + entry.count) % cap] = now;
      entry.count++;
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
    const entry = this.entries.get(ticket.key);
    if (!entry) return;
    const cap = this.config.maxRepeats;
    // Newest first: the ticket is almost always the latest call.
    for (let i = entry.count - 1; i >= 0; i--) {
      if (entry.times[(entry.head + i) % cap] !== ticket.at) continue;
      for (let j = i; j < entry.count - 1; j++) {
        entry.times[(entry.head + j) % cap] = entry.times[(entry.head + j + 1) % cap]!;
      }
      entry.count--;
      if (entry.count === 0) this.remove(entry);
      return;
    }
  }

  /** Drops keys at the least recently used end whose newest call has left the window. */
  private sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_CALL && this.oldest && this.expired(this.oldest, now); i++) {
      this.remove(this.oldest);
    }
  }

  private enforceCap(now: number): void {
    while (this.entries.size > this.config.maxTrackedCalls && this.oldest) {
      const victim = this.oldest;
      this.remove(victim);
      if (!this.expired(victim, now) && now - this.lastEvictionWarning > 60_000) {
        this.lastEvictionWarning = now;
        this.logger?.warn(
          { maxTrackedCalls: this.config.maxTrackedCalls },
          "loop guard is tracking its maximum of distinct calls; the least recently used are forgotten early",
        );
      }
    }
  }

  private expired(entry: Entry, now: number): boolean {
    if (entry.count === 0) return true;
    const newest = entry.times[(entry.head + entry.count - 1) % this.config.maxRepeats]!;
    return newest <= now - this.windowMs;
  }

  private remove(entry: Entry): void {
    this.unlink(entry);
    this.entries.delete(entry.key);
  }

  private unlink(entry: Entry): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = entry.newer = undefined;
  }

  private linkNewest(entry: Entry): void {
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
  }
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
  return hash("sha256", canonical ?? safeJson([subject, tool, args]), "base64url");
}
