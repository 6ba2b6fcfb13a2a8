import { handleWhen, retry, type IBackoff, type IBackoffFactory, type IRetryBackoffContext } from "cockatiel";
import { UpstreamFailure } from "./errors.js";

export interface RetrySettings {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/**
 * Exponential backoff with full jitter (so replicas retrying the same outage spread out), except
 * that a Retry-After the upstream sent (429/503) is honoured as given.
 */
class RetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly settings: RetrySettings,
    private readonly attempt = 0,
    readonly duration = 0,
  ) {}

  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const err = "error" in context.result ? context.result.error : undefined;
    const hinted = err instanceof UpstreamFailure ? err.retryAfterMs : undefined;
    const ceiling = Math.min(this.settings.maxDelayMs, this.settings.initialDelayMs * 2 ** this.attempt);
    const duration = hinted ?? Math.round(Math.random() * ceiling);
    return new RetryAfterBackoff(this.settings, this.attempt + 1, duration);
  }
}

/**
 * Retries only failures the upstream told us are transient, and only while the wait still fits
 * in the call's time budget (a Retry-After beyond the deadline fails now, with the 429 message).
 */
export function retryPolicy(settings: RetrySettings, deadline: number, attemptsMade = 0) {
  return retry(
    handleWhen((err) => isRetryable(err, deadline)),
    {
      maxAttempts: Math.max(0, settings.maxAttempts - 1 - attemptsMade),
      backoff: new RetryAfterBackoff(settings, attemptsMade),
    },
  );
}

/** The wait before the second attempt, as the policy's backoff would choose it after `err`. */
export function firstRetryDelay(settings: RetrySettings, err: unknown): number {
  return new RetryAfterBackoff(settings).next({
    attempt: 1,
    result: { error: err as Error },
    signal: new AbortController().signal,
  }).duration;
}

/** A failure the upstream told us is transient, whose wait still fits in the call's budget. */
export function isRetryable(err: unknown, deadline: number): boolean {
  if (!(err instanceof UpstreamFailure) || !err.retryable) return false;
  const wait = err.retryAfterMs ?? 0;
  return Date.now() + wait < deadline;
}
