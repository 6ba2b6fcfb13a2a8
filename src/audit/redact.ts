import { createHmac } from "node:crypto";
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

export class Redactor {
  private readonly rules: CompiledRule[];
  private readonly key: Buffer | undefined;
  /** Identifies the key in digests without revealing it, so a rotation is visible in records. */
  readonly keyId: string;

  constructor(rules: readonly RedactionRule[], key: string | undefined) {
    this.rules = rules.map((r) => ({ connector: r.connector, tool: r.tool, paths: r.paths.map(parseRedactionPath) }));
    if (this.rules.length > 0 && key === undefined) throw new RedactionPathError("redaction rules need a key");
    this.key = key === undefined ? undefined : Buffer.from(key, "utf8");
    this.keyId = key === undefined ? "" : sha256(`portcullis-redaction-key\n${key}`).subarray(0, 4).toString("hex");
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  digest(value: unknown): string {
    const mac = createHmac("sha256", this.key ?? Buffer.alloc(0))
      .update(canonicalize(value) ?? "null")
      .digest("base64url");
    return `hmac-sha256:${this.keyId}:${mac}`;
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
    const container = node as Record<string | number, unknown>;
    const children: (string | number)[] = Array.isArray(node) ? node.map((_, n) => n) : Object.keys(node);
    const visit = (k: string | number, next: number): void => {
      if (!Object.prototype.hasOwnProperty.call(container, k)) return;
      if (next === segs.length) {
        const p = formatPath([...path, k]);
        if (!hits.has(p)) {
          container[k] = this.digest(container[k]);
          hits.add(p);
        }
      } else {
        this.walk(container[k], segs, next, [...path, k], hits);
      }
    };
    if ("deep" in seg) {
      // `**` matches zero or more levels: try the rest of the pattern here and below every child.
      this.walk(node, segs, i + 1, path, hits);
      for (const k of children) this.walk(container[k], segs, i, [...path, k], hits);
    } else if ("any" in seg) {
      for (const k of children) visit(k, i + 1);
    } else if ("index" in seg) {
      if (Array.isArray(node)) visit(seg.index, i + 1);
    } else if (!Array.isArray(node)) {
      visit(seg.key, i + 1);
    }
  }
}
