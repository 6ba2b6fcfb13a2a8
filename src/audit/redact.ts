import { hash } from "node:crypto";
import canonicalize from "canonicalize";
import { sha256 } from "./hash.js";

/**
 * Redaction by rule: argument paths chosen per connector/tool are replaced by a keyed digest
 * (HMAC-SHA256 over the value's canonical JSON). Equal values give equal digests under one key,
 * so an investigator holding the key can still test "was this card number used?" without the log
 * ever holding the number.
 */

export interface RedactionRule {
  readonly connector: string;
  readonly tool: string;
  readonly paths: readonly string[];
}

type Segment = { key: string } | { index: number } | { any: true } | { deep: true };

export class RedactionPathError extends Error {
  override readonly name = "RedactionPathError";
}

/** Parses `a.b`, `$.a[0].b`, `items[*].iban`, `*.password`, `**.secret`, `["odd key"]`. */
export function parseRedactionPath(path: string): Segment[] {
  let rest = path.startsWith("$") ? path.slice(1) : path;
  const segs: Segment[] = [];
  while (rest.length > 0) {
    let m: RegExpExecArray | null;
    if ((m = /^\.?\*\*/.exec(rest))) segs.push({ deep: true });
    else if ((m = /^\.?\*/.exec(rest)) || (m = /^\[\*\]/.exec(rest))) segs.push({ any: true });
    else if ((m = /^\[(\d{1,9})\]/.exec(rest))) segs.push({ index: Number(m[1]) });
    else if ((m = /^\["((?:[^"\\]|\\.)*)"\]/.exec(rest))) segs.push({ key: JSON.parse(`"${m[1]}"`) as string });
    else if ((m = /^\.?([A-Za-z0-9_$@-][^.[\]]*)/.exec(rest))) segs.push({ key: m[1]! });
    else throw new RedactionPathError(`cannot parse redaction path "${path}" at "${rest.slice(0, 20)}"`);
    rest = rest.slice(m[0].length);
  }
  if (segs.length === 0) throw new RedactionPathError(`redaction path "${path}" selects nothing`);
  return segs;
}

function formatPath(path: readonly (string | number)[]): string {
  let out = "$";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

interface CompiledRule {
  connector: string;
  tool: string;
  paths: Segment[][];
}

/** SHA-256's block size: HMAC pads its key to this (RFC 2104). */
const BLOCK = 64;

export class Redactor {
  private readonly rules: CompiledRule[];
  /** HMAC's inner input: the padded key XOR 0x36, then the message (grown as needed). */
  private inner: Buffer;
  /** HMAC's outer input: the padded key XOR 0x5c, then the inner hash. */
  private readonly outer = Buffer.alloc(BLOCK + 32);
  /** Identifies the key in digests without revealing it, so a rotation is visible in records. */
  readonly keyId: string;

  constructor(rules: readonly RedactionRule[], key: string | undefined) {
    this.rules = rules.map((r) => ({ connector: r.connector, tool: r.tool, paths: r.paths.map(parseRedactionPath) }));
    if (this.rules.length > 0 && key === undefined) throw new RedactionPathError("redaction rules need a key");
    this.keyId = key === undefined ? "" : sha256(`portcullis-redaction-key\n${key}`).subarray(0, 4).toString("hex");
    // HMAC-SHA256 (RFC 2104) from two one-shot hashes over pads computed once: createHmac sets the
    // key up again on every call, which cost more than the rest of an audit record's preparation.
    const raw = Buffer.from(key ?? "", "utf8");
    const padded = Buffer.alloc(BLOCK);
    (raw.length > BLOCK ? sha256(raw) : raw).copy(padded);
    this.inner = Buffer.alloc(BLOCK + 256);
    for (let i = 0; i < BLOCK; i++) {
      this.inner[i] = padded[i]! ^ 0x36;
      this.outer[i] = padded[i]! ^ 0x5c;
    }
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  digest(value: unknown): string {
    const text = canonicalize(value) ?? "null";
    const needed = BLOCK + Buffer.byteLength(text);
    if (needed > this.inner.length) {
      const grown = Buffer.alloc(Math.max(needed, 2 * this.inner.length));
      this.inner.copy(grown, 0, 0, BLOCK);
      this.inner = grown;
    }
    const length = BLOCK + this.inner.write(text, BLOCK, "utf8");
    // A string result ("binary", i.e. latin1: one character per byte) costs less than a Buffer.
    this.outer.write(hash("sha256", this.inner.subarray(0, length), "binary"), BLOCK, "latin1");
    return `hmac-sha256:${this.keyId}:${hash("sha256", this.outer, "base64url")}`;
  }

  /**
   * Redacts `args` in place (the caller passes its own normalised copy) and returns the concrete
   * paths that were replaced, sorted, so the record says what it does not contain.
   */
  apply(connector: string | undefined, tool: string | undefined, args: Record<string, unknown>): string[] {
    const hits = new Set<string>();
    for (const rule of this.rules) {
      if (rule.connector !== "*" && rule.connector !== connector) continue;
      if (rule.tool !== "*" && rule.tool !== tool) continue;
      for (const segs of rule.paths) this.walk(args, segs, 0, [], hits);
    }
    return [...hits].sort();
  }

  private walk(
    node: unknown,
    segs: readonly Segment[],
    i: number,
    path: (string | number)[],
    hits: Set<string>,
  ): void {
    const seg = segs[i];
    if (seg === undefined || typeof node !== "object" || node === null) return;
    if ("deep" in seg) {
      // `**` matches zero or more levels: try the rest of the pattern here and below every child.
      this.walk(node, segs, i + 1, path, hits);
      for (const k of childrenOf(node)) this.walk((node as Record<string | number, unknown>)[k], segs, i, [...path, k], hits);
    } else if ("any" in seg) {
      for (const k of childrenOf(node)) this.visit(node, k, segs, i + 1, path, hits);
    } else if ("index" in seg) {
      if (Array.isArray(node)) this.visit(node, seg.index, segs, i + 1, path, hits);
    } else if (!Array.isArray(node)) {
      this.visit(node, seg.key, segs, i + 1, path, hits);
    }
  }

  private visit(
    node: object,
    k: string | number,
    segs: readonly Segment[],
    next: number,
    path: (string | number)[],
    hits: Set<string>,
  ): void {
    if (!Object.prototype.hasOwnProperty.call(node, k)) return;
    const container = node as Record<string | number, unknown>;
    if (next === segs.length) {
      const p = formatPath([...path, k]);
      if (!hits.has(p)) {
        container[k] = this.digest(container[k]);
        hits.add(p);
      }
    } else {
      this.walk(container[k], segs, next, [...path, k], hits);
    }
  }
}

function childrenOf(node: object): (string | number)[] {
  return Array.isArray(node) ? node.map((_, n) => n) : Object.keys(node);
}
