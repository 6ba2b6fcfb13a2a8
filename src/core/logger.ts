import { pino, type DestinationStream, type Logger } from "pino";

/**
 * Log lines go to stderr only: under stdio, stdout is the MCP protocol and one stray byte breaks
 * the client. Anything that looks like a credential is redacted wherever it appears.
 */
/**
 * Lines are written to stderr in batches of this many bytes, or LOG_FLUSH_MS after the first, and
 * at exit. A write per line cost a busy gateway a system call, a thread-pool round trip and an
 * event-loop wake-up per call: −40 µs at p50 and −50 µs of CPU per sequential call in a paired
 * probe. Only a process killed outright (SIGKILL, the OOM killer) can lose the last lines; the
 * audit log, not this one, is the record of every call.
 */
export const LOG_BATCH_BYTES = 4096;
export const LOG_FLUSH_MS = 200;

export function createLogger(level: string = "info", destination?: DestinationStream): Logger {
  const logger = pino(
    {
      level,
      base: { service: "portcullis" },
      // Our own redaction rather than pino's `redact` paths: those clone every logged object
      // (about 10 KB of garbage per line, 20 % of what a tool call allocated) and match key names
      // case-sensitively at fixed depths; this one matches at any depth and copies only when it
      // finds something to hide.
      formatters: { log: redactSecrets, bindings: redactSecrets },
    },
    destination ??
      pino.destination({ fd: 2, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS }),
  );
  // A child's bindings skip the bindings formatter; children inherit this from their parent.
  const plainChild = logger.child;
  logger.child = function (this: Logger, bindings, options) {
    return plainChild.call(this, redactSecrets(bindings), options);
  } as Logger["child"];
  return logger;
}

export const REDACTED = "[redacted]";

/**
 * Key names that hold credentials, in any case and with or without `-`/`_`: token, accessToken,
 * refresh_token, password, secret, clientSecret, apiKey, x-api-key, authorization,
 * proxy-authorization, cookie, set-cookie, connectionString, privateKey.
 */
const SECRET_KEY =
  /^(?:x[-_]?)?(?:(?:access|refresh|id|bearer|session|auth)[-_]?)?(?:token|api[-_]?key|password|passwd|secret|client[-_]?secret|(?:proxy[-_]?)?authorization|(?:set[-_]?)?cookie|connection[-_]?string|private[-_]?key)$/i;
/** Keys redacted at the top of a log line only: `{ url }` there is a connection URL that may carry a password. */
const TOP_LEVEL_SECRET_KEY = /^url$/i;
/** Deeper than this, values are left as they are (log objects are shallow; this bounds the walk). */
const MAX_DEPTH = 8;

/**
 * Returns `value` itself when it holds no credential-named key (no allocation: the common case),
 * otherwise a copy with those values replaced by "[redacted]". The original is never changed.
 * Errors stay Errors (same prototype, message and stack) so pino's serializer still names them.
 */
export function redactSecrets<T>(value: T): T {
  try {
    return redactValue(value, 0) as T;
  } finally {
    visited.clear();
  }
}

/**
 * Objects already walked in this call, and what they became: an object reached twice (a cycle,
 * or shared below several keys) is walked once, and every reference to it gets the same copy.
 * Reused across calls; logging is synchronous, so one walk never overlaps another.
 */
const visited = new Map<object, unknown>();

function redactValue(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof Map || value instanceof Set)
    return value;
  const done = visited.get(value);
  // An object that contains itself: what pino would print for it anyway, and never the original
  // (whose secrets sit further down the cycle).
  if (done !== undefined) return done === IN_PROGRESS ? CIRCULAR : done;
  visited.set(value, IN_PROGRESS);
  const result = Array.isArray(value) ? redactArray(value, depth) : redactObject(value, depth);
  visited.set(value, result);
  return result;
}

const IN_PROGRESS = Symbol("in progress");
const CIRCULAR = "[Circular]";

function redactArray(value: readonly unknown[], depth: number): unknown {
  let copy: unknown[] | undefined;
  for (let i = 0; i < value.length; i++) {
    const item = value[i];
    const next = redactValue(item, depth + 1);
    if (next !== item) (copy ??= value.slice())[i] = next;
  }
  return copy ?? value;
}

function redactObject(value: object, depth: number): unknown {
  let copy: Record<string, unknown> | undefined;
  const keys = Object.keys(value);
  // An error's cause is not enumerable, but pino's serializer prints it.
  if (value instanceof Error && Object.hasOwn(value, "cause") && !keys.includes("cause")) keys.push("cause");
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    const secret = SECRET_KEY.test(key) || (depth === 0 && TOP_LEVEL_SECRET_KEY.test(key));
    const next = secret
      ? item === undefined || item === null
        ? item
        : REDACTED
      : redactValue(item, depth + 1);
    if (next !== item) {
      copy ??= shallowCopy(value);
      // defineProperty, not assignment: a frozen or read-only original stays loggable.
      const enumerable = Object.getOwnPropertyDescriptor(copy, key)?.enumerable ?? true;
      Object.defineProperty(copy, key, { value: next, enumerable, writable: true, configurable: true });
    }
  }
  return copy ?? value;
}

function shallowCopy(value: object): Record<string, unknown> {
  if (!(value instanceof Error)) return { ...(value as Record<string, unknown>) };
  // Same prototype (pino names the type from the constructor), message, stack and cause kept.
  const copy = Object.create(Object.getPrototypeOf(value) as object) as Record<string, unknown>;
  for (const key of Object.getOwnPropertyNames(value)) {
    Object.defineProperty(copy, key, { ...Object.getOwnPropertyDescriptor(value, key)!, configurable: true });
  }
  return copy;
}

export type { Logger };
