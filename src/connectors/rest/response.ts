import { isPlainObject, type ToolResult } from "../../core/index.js";
import type { RawResponse } from "./http.js";
import { isJsonMediaType } from "./operations.js";
import { TRUNCATION_PROPERTY } from "./tools.js";

export type Decoded =
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string; contentType: string }
  | { kind: "empty" }
  | { kind: "binary"; contentType: string }
  | { kind: "invalid-json"; reason: string };

const TEXTUAL =
  /^(text\/|application\/(xml|x-www-form-urlencoded|javascript|x-yaml|yaml|csv|x-ndjson)\b)|\+xml\b/;

export function decodeBody(res: RawResponse): Decoded {
  if (res.body.length === 0) return { kind: "empty" };
  const contentType = (res.headers["content-type"] ?? "").toLowerCase();
  const base = contentType.split(";")[0]!.trim();
  if (isJsonMediaType(base) || base === "") {
    const text = decodeText(res.body, contentType);
    try {
      return { kind: "json", value: JSON.parse(text) as unknown };
    } catch (err) {
      if (base === "")
        return looksBinary(res.body)
          ? { kind: "binary", contentType: "unknown" }
          : { kind: "text", text, contentType: "text/plain" };
      return {
        kind: "invalid-json",
        reason: err instanceof Error ? err.message.slice(0, 200) : "parse error",
      };
    }
  }
  if (TEXTUAL.test(base)) return { kind: "text", text: decodeText(res.body, contentType), contentType: base };
  return { kind: "binary", contentType: base };
}

function decodeText(body: Buffer, contentType: string): string {
  const charset = /charset="?([^";\s]+)/.exec(contentType)?.[1];
  if (charset && !/^utf-?8$/i.test(charset)) {
    try {
      return new TextDecoder(charset).decode(body);
    } catch {
      // Unknown charset: UTF-8 is the best guess.
    }
  }
  return body.toString("utf8");
}

function looksBinary(body: Buffer): boolean {
  return body.subarray(0, 1024).includes(0);
}

/**
 * RFC 6901 pointers, plus `*` as a segment for "every item / member". The result keeps the
 * original nesting, with only the selected branches.
 */
export function project(value: unknown, pointers: readonly string[]): Record<string, unknown> {
  let out: unknown = undefined;
  for (const pointer of pointers) {
    const segments = pointer === "" ? [] : pointer.slice(1).split("/").map(unescapePointer);
    out = merge(out, pick(value, segments));
  }
  return isPlainObject(out) ? out : { result: out ?? null };
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, "/").replace(/~0/g, "~");
}

function pick(value: unknown, segments: string[]): unknown {
  if (segments.length === 0) return value;
  const [head, ...rest] = segments as [string, ...string[]];
  if (Array.isArray(value)) {
    if (head === "*") return value.map((v) => pick(v, rest));
    const i = Number(head);
    if (!Number.isInteger(i) || i < 0 || i >= value.length) return undefined;
    const out: unknown[] = [];
    out[i] = pick(value[i], rest);
    return out;
  }
  if (isPlainObject(value)) {
    if (head === "*") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = pick(v, rest);
      return out;
    }
    if (!Object.hasOwn(value, head)) return undefined;
    const sub = pick(value[head], rest);
    return sub === undefined ? undefined : { [head]: sub };
  }
  return undefined;
}

function merge(a: unknown, b: unknown): unknown {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [...a];
    b.forEach((v, i) => {
      out[i] = merge(out[i], v);
    });
    return out;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  }
  return b;
}

/** Sparse arrays from index pointers become dense (holes would serialise as null anyway). */
function densify(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v, i) => i in value && v !== undefined).map(densify);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = densify(v);
    return out;
  }
  return value;
}

export function projectDense(value: unknown, pointers: readonly string[]): Record<string, unknown> {
  return densify(project(value, pointers)) as Record<string, unknown>;
}

const STRING_KEEP = 1_024;

/**
 * Shrinks a result to `limit` bytes of JSON without breaking its shape: arrays lose their tail
 * items (largest array first), then very long strings are cut; a top-level `_truncated` object
 * says what was left out. Returns undefined when even that cannot fit.
 */
export function shrinkToFit(
  value: Record<string, unknown>,
  limit: number,
): { value: Record<string, unknown>; truncated: boolean } | undefined {
  const originalBytes = Buffer.byteLength(JSON.stringify(value));
  if (originalBytes <= limit) return { value, truncated: false };
  const copy = structuredClone(value);
  let omittedItems = 0;
  const marker = () => ({ omittedItems, originalBytes, limitBytes: limit });
  const size = () => Buffer.byteLength(JSON.stringify({ ...copy, [TRUNCATION_PROPERTY]: marker() }));
  for (let round = 0; round < 200 && size() > limit; round++) {
    const largest = largestArray(copy);
    if (!largest || largest.length === 0) break;
    const drop = Math.max(1, Math.ceil(largest.length / 2));
    largest.splice(largest.length - drop, drop);
    omittedItems += drop;
  }
  // Halving can overshoot: add items back one at a time while they fit would cost O(n^2); accept it.
  if (size() > limit) cutLongStrings(copy);
  copy[TRUNCATION_PROPERTY] = marker();
  if (Buffer.byteLength(JSON.stringify(copy)) > limit) return undefined;
  return { value: copy, truncated: true };
}

function largestArray(root: unknown): unknown[] | undefined {
  let best: unknown[] | undefined;
  let bestSize = 0;
  const visit = (v: unknown) => {
    if (Array.isArray(v)) {
      if (v.length > 0) {
        const s = JSON.stringify(v).length;
        if (s > bestSize) {
          best = v;
          bestSize = s;
        }
      }
      v.forEach(visit);
    } else if (isPlainObject(v)) Object.values(v).forEach(visit);
  };
  visit(root);
  return best;
}

function cutLongStrings(v: unknown): unknown {
  if (typeof v === "string") return v.length > STRING_KEEP ? `${v.slice(0, STRING_KEEP)}…[truncated]` : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = cutLongStrings(v[i]);
    return v;
  }
  if (isPlainObject(v)) {
    for (const k of Object.keys(v)) v[k] = cutLongStrings(v[k]);
  }
  return v;
}

export function textResult(text: string, limit: number): ToolResult {
  const bytes = Buffer.byteLength(text);
  if (bytes <= limit) return { text };
  const cut = Buffer.from(text)
    .subarray(0, limit)
    .toString("utf8")
    .replace(/\uFFFD$/, "");
  return { text: `${cut}\n…[truncated: showing ${Buffer.byteLength(cut)} of ${bytes} bytes]` };
}
