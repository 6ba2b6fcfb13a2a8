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
export function retryPolicy(settings: RetrySettings, deadline: number) {
  const retryable = (err: Error): boolean => {
    if (!(err instanceof UpstreamFailure) || !err.retryable) return false;
    const wait = err.retryAfterMs ?? 0;
    return Date.now() + wait < deadline;
  };
  return retry(handleWhen(retryable), {
    maxAttempts: Math.max(0, settings.maxAttempts - 1),
    backoff: new RetryAfterBackoff(settings),
  });
}
