import type { AuditEvent } from "../core/governance.js";
import { isPlainObject } from "../core/json.js";
import { sha256 } from "./hash.js";
import type { Redactor } from "./redact.js";

/**
 * Audit records. A record is the RFC 8785 canonical JSON of
 *   {"event": <event>, "prev": <hex hash of the previous record>, "seq": <n>, "v": 1}
 * and those exact bytes are stored and hashed. Canonical key order puts the envelope fields after
 * the event, so a record is composed from the event's canonical text without re-serialising it.
 */

export const RECORD_VERSION = 1;
const MAX_DEPTH = 64;

export class RecordError extends Error {
  override readonly name = "RecordError";
}

/**
 * RFC 8785 serialisation of an already-normalised JSON value (plain objects, arrays, strings,
 * finite numbers, booleans, null). Same output as the `canonicalize` package, which the tests
 * hold it to, without its per-member string rebuilding: this runs on every append. Key order is
 * JavaScript's default sort, i.e. by UTF-16 code units, as RFC 8785 §3.2.3 requires; strings and
 * numbers use JSON.stringify, whose output is RFC 8785's (§3.2.2.2, §3.2.2.3).
 */
export function canonicalJson(value: unknown): string {
  // Fast path: copy with members in RFC 8785 order, then let V8's native JSON.stringify write it.
  // JavaScript orders array-index-like member names numerically whatever their insertion order,
  // so an object holding such a name takes the slow path, which writes every member itself.
  const sorted = sortedCopy(value, 0);
  return sorted === NEEDS_SLOW_PATH ? canonicalJsonSlow(value) : (JSON.stringify(sorted) as string);
}

const NEEDS_SLOW_PATH = Symbol("slow");
const INDEX_LIKE = /^(?:0|[1-9]\d{0,9})$/;

function sortedCopy(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth > MAX_DEPTH) return NEEDS_SLOW_PATH;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = sortedCopy(value[i], depth + 1);
      if (v === NEEDS_SLOW_PATH) return v;
      out[i] = v;
    }
    return out;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return NEEDS_SLOW_PATH;
  const keys = Object.keys(value).sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (INDEX_LIKE.test(k)) return NEEDS_SLOW_PATH;
    const v = sortedCopy((value as Record<string, unknown>)[k], depth + 1);
    if (v === NEEDS_SLOW_PATH) return v;
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function canonicalJsonSlow(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + canonicalJsonSlow(value[i]);
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = "{";
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += `${first ? "" : ","}${JSON.stringify(k)}:${canonicalJsonSlow(v)}`;
    first = false;
  }
  return `${out}}`;
}

/** The columns kept beside each record so that queries do not parse the log. Verify recomputes them. */
export interface RecordColumns {
  readonly time: string;
  readonly type: string;
  readonly callId: string | null;
  readonly subject: string | null;
  readonly connector: string | null;
  readonly tool: string | null;
  readonly outcome: string | null;
}

export interface PreparedEvent {
  /** Canonical JSON text of the (normalised, redacted) event. */
  readonly canonical: string;
  readonly columns: RecordColumns;
}

export interface RecordEnvelope {
  readonly v: number;
  readonly seq: number;
  readonly prev: string;
  readonly event: Record<string, unknown>;
}

/** Set while normalising when a member name is array-index-like (see canonicalJson). */
let sawIndexLikeKey = false;

/**
 * Where normalizeJson is: its root's path and the keys below it. A path is formatted only for a
 * message or a conversion note; building one per member cost more than the rest of normalising.
 */
let pathRoot = "$";
const pathKeys: (string | number)[] = [];

function currentPath(): string {
  let out = pathRoot;
  for (const k of pathKeys) {
    out += typeof k === "number" ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
  }
  return out;
}

/** False when `s` holds a lone surrogate (String.prototype.isWellFormed: Node 20, not in lib ES2023). */
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

const isIndexLike = (k: string): boolean => {
  const c = k.charCodeAt(0);
  return c >= 0x30 && c <= 0x39 && INDEX_LIKE.test(k);
};

/**
 * Which members of the top object the caller fills in itself (`own`: never taken from the value)
 * or may fill in (`slots`): both get their place in RFC 8785 order now, holding undefined until
 * then, so that JSON.stringify writes the finished object in canonical order as it is.
 */
interface TopMembers {
  readonly own: readonly string[];
  readonly slots: readonly string[];
}

/**
 * Makes a value plain JSON that survives the round trip exactly, members in RFC 8785 order: bigint
 * and integers beyond 2^53 become decimal strings (their paths, below `root`, are reported in
 * `converted`), undefined members are dropped, and what JSON cannot carry (NaN, Infinity,
 * functions, symbols, cycles) is refused.
 */
export function normalizeJson(value: unknown, root: string, converted: string[], top?: TopMembers): unknown {
  pathRoot = root;
  pathKeys.length = 0;
  if (top !== undefined && isPlainObject(value)) return normalizeObject(value, converted, 0, top);
  return normalize(value, converted, 0);
}

function normalize(value: unknown, converted: string[], depth: number): unknown {
  if (depth > MAX_DEPTH) throw new RecordError(`value nests deeper than ${MAX_DEPTH} levels at ${currentPath()}`);
  switch (typeof value) {
    case "string":
      // RFC 8785 (I-JSON) has no room for lone surrogates; refusing beats recording a different string.
      if (!isWellFormed(value)) throw new RecordError(`string with a lone surrogate at ${currentPath()}`);
      return value;
    case "boolean":
      return value;
    case "bigint":
      converted.push(currentPath());
      return value.toString();
    case "number":
      if (!Number.isFinite(value)) throw new RecordError(`non-finite number at ${currentPath()}`);
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        // Precision is already gone in a double this large: record the exact value it holds, as text.
        converted.push(currentPath());
        return BigInt(value).toString();
      }
      return value;
    case "object": {
      if (value === null) return null;
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new RecordError(`invalid date at ${currentPath()}`);
        return value.toISOString();
      }
      if (Array.isArray(value)) {
        const out: unknown[] = [];
        for (let i = 0; i < value.length; i++) {
          pathKeys.push(i);
          // A hole or undefined element is null, as JSON.stringify writes it.
          out.push(normalize((value[i] as unknown) ?? null, converted, depth + 1));
          pathKeys.pop();
        }
        return out;
      }
      return normalizeObject(value as Record<string, unknown>, converted, depth, undefined);
    }
    default:
      throw new RecordError(`a ${typeof value} at ${currentPath()} cannot be recorded`);
  }
}

function normalizeObject(
  value: Record<string, unknown>,
  converted: string[],
  depth: number,
  top: TopMembers | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value);
  if (top !== undefined) for (const k of top.slots) if (!keys.includes(k)) keys.push(k);
  for (const k of keys.sort()) {
    if (top !== undefined && (top.own.includes(k) || (top.slots.includes(k) && value[k] === undefined))) {
      out[k] = undefined;
      continue;
    }
    const v = value[k];
    if (v === undefined) continue;
    if (!isWellFormed(k)) throw new RecordError(`member name with a lone surrogate at ${currentPath()}`);
    if (isIndexLike(k)) sawIndexLikeKey = true;
    pathKeys.push(k);
    out[k] = normalize(v, converted, depth + 1);
    pathKeys.pop();
  }
  return out;
}

/** Canonical text of a value normalizeJson produced: its members are in order already. */
function canonicalOfNormalized(body: Record<string, unknown>): string {
  return sawIndexLikeKey ? canonicalJson(body) : JSON.stringify(body);
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

export function columnsOf(event: Record<string, unknown>): RecordColumns {
  const identity = isPlainObject(event.identity) ? event.identity : {};
  const outcome = isPlainObject(event.outcome) ? event.outcome : undefined;
  const decision = isPlainObject(event.decision) ? event.decision : undefined;
  return {
    time: str(event.time) ?? "",
    type: str(event.type) ?? "",
    callId: str(event.callId),
    subject: str(identity.subject),
    connector: str(event.connector),
    tool: str(event.tool),
    outcome: str(outcome?.status) ?? (decision?.allowed === false ? "denied" : null),
  };
}

/** Event members prepareEvent writes itself: from what the event holds, or computed. */
const PREPARED_MEMBERS: TopMembers = { own: ["identity", "arguments"], slots: ["identity", "arguments", "redacted", "numbersAsText"] };

export interface PrepareOptions {
  readonly redactor: Redactor;
  readonly maxRecordBytes: number;
}

/** Validates, normalises and redacts an event; returns its canonical text. Throws RecordError. */
export function prepareEvent(event: AuditEvent, opts: PrepareOptions): PreparedEvent {
  if (!isPlainObject(event)) throw new RecordError("audit event must be an object");
  if (typeof event.type !== "string" || !/^[a-z][a-z0-9._-]{0,63}$/.test(event.type)) {
    throw new RecordError("audit event type must be a short lowercase name");
  }
  const millis = typeof event.time === "string" ? Date.parse(event.time) : NaN;
  if (Number.isNaN(millis)) throw new RecordError("audit event time must be an ISO-8601 timestamp");
  const converted: string[] = [];
  sawIndexLikeKey = false;
  const { identity, arguments: args } = event;
  const body = normalizeJson(event, "$", converted, PREPARED_MEMBERS) as Record<string, unknown>;
  // Times are stored in one form (UTC, milliseconds) so that time-range queries compare as text.
  body.time = new Date(millis).toISOString();
  if (identity !== undefined) {
    // Only these members: a full Identity also carries claims, which are not the log's to keep.
    body.identity = normalizeJson(
      { subject: identity.subject, clientId: identity.clientId, issuer: identity.issuer, scopes: identity.scopes },
      "$.identity",
      converted,
    );
  }
  if (args !== undefined) {
    if (!isPlainObject(args)) throw new RecordError("audit event arguments must be an object");
    const normalized = normalizeJson(args, "$.arguments", converted) as Record<string, unknown>;
    const redacted = opts.redactor.active ? opts.redactor.apply(event.connector, event.tool, normalized) : [];
    body.arguments = normalized;
    if (redacted.length > 0) body.redacted = redacted.map((p) => `$.arguments${p.slice(1)}`);
  }
  if (converted.length > 0) body.numbersAsText = converted;
  let canonical = canonicalOfNormalized(body);
  if (Buffer.byteLength(canonical) > opts.maxRecordBytes && body.arguments !== undefined) {
    // An oversized call is still recorded, with its arguments as a digest, rather than refused.
    const argsText = canonicalJson(body.arguments);
    body.arguments = { $omitted: true, bytes: Buffer.byteLength(argsText), sha256: sha256(argsText).toString("hex") };
    canonical = canonicalJson(body);
  }
  if (Buffer.byteLength(canonical) > opts.maxRecordBytes) {
    throw new RecordError(`audit record is larger than maxRecordBytes (${opts.maxRecordBytes})`);
  }
  return { canonical, columns: columnsOf(body) };
}

/** The record text for an event at `seq` chained to `prev`. Equal to canonicalize(envelope). */
export function composeRecord(eventCanonical: string, prev: string, seq: number): string {
  return `{"event":${eventCanonical},"prev":"${prev}","seq":${seq},"v":${RECORD_VERSION}}`;
}

/** Parses stored record bytes and checks they are the canonical form of a well-formed envelope. */
export function parseRecord(text: string): RecordEnvelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RecordError("record is not valid JSON");
  }
  if (!isPlainObject(value)) throw new RecordError("record is not a JSON object");
  const { v, seq, prev, event } = value;
  if (v !== RECORD_VERSION) throw new RecordError(`record version ${String(v)} is not supported`);
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw new RecordError("record seq is not an integer");
  if (typeof prev !== "string" || !/^[0-9a-f]{64}$/.test(prev)) throw new RecordError("record prev is not a hash");
  if (!isPlainObject(event)) throw new RecordError("record event is not an object");
  if (Object.keys(value).length !== 4) throw new RecordError("record has unexpected members");
  return { v, seq: seq as number, prev, event };
}
