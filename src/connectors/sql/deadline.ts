import { SqlFailure } from "./engine.js";

export function abortFailure(signal: AbortSignal): SqlFailure {
  return new SqlFailure(
    "aborted",
    "the call was cancelled and the statement stopped",
    undefined,
    signal.reason,
  );
}

export function timeoutFailure(timeoutMs: number): SqlFailure {
  return new SqlFailure("timeout", `the statement ran longer than ${timeoutMs} ms and was stopped`);
}

/**
 * Races `work` against the time budget and the caller's signal. When either wins, `stop` runs
 * (cancel the statement server-side, drop the connection) and the call fails at once, without
 * waiting for the database to acknowledge; `work`'s own late outcome is then ignored.
 */
export function withDeadline<T>(
  work: Promise<T>,
  timeoutMs: number,
  signal: AbortSignal,
  stop: (failure: SqlFailure) => void,
): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    const failure = abortFailure(signal);
    stop(failure);
    return Promise.reject(failure);
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      fn();
    };
    const fail = (failure: SqlFailure) =>
      finish(() => {
        stop(failure);
        reject(failure);
      });
    const timer = setTimeout(() => fail(timeoutFailure(timeoutMs)), Math.max(1, timeoutMs));
    const onAbort = () => fail(abortFailure(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => finish(() => resolve(v)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}
