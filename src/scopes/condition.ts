import { compareDecimal, parseDecimal, type Decimal } from "./decimal.js";

/**
 * Approval conditions: a deliberately tiny language over the call's arguments, e.g.
 * `amount > 200.00`, `status == "cancelled" and amount >= 50`, `not (priority == "low")`.
 * Numbers are compared as exact decimals (never floats). No function calls, no arithmetic:
 * an approver must be able to read a rule and know exactly when it fires.
 */
export interface Condition {
  readonly source: string;
  /** Argument paths the condition reads, e.g. [["amount"], ["payment", "currency"]]. */
  readonly paths: readonly (readonly string[])[];
  /** Literal kinds each path is compared with, for load-time checks against the tool schema. */
  readonly comparisons: readonly {
    path: readonly string[];
    literal: "decimal" | "string" | "boolean";
    op: Op;
  }[];
  test(args: Readonly<Record<string, unknown>>): boolean;
}

export class ConditionSyntaxError extends Error {
  override readonly name = "ConditionSyntaxError";
}

type Op = ">" | ">=" | "<" | "<=" | "==" | "!=";
type Literal =
  | { kind: "decimal"; value: Decimal; text: string }
  | { kind: "string"; value: string }
  | { kind: "boolean"; value: boolean };
type Node =
  | { t: "and" | "or"; l: Node; r: Node }
  | { t: "not"; e: Node }
  | { t: "cmp"; path: string[]; op: Op; lit: Literal };

type Token = { k: "id" | "op" | "num" | "str" | "punct"; v: string; at: number };

const MAX_CONDITION_CHARS = 1000;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^(>=|<=|==|!=|&&|\|\||>|<|!)/.exec(rest))) {
      out.push({ k: "op", v: m[1]!, at: i });
    } else if ((m = /^[()]/.exec(rest))) {
      out.push({ k: "punct", v: m[0], at: i });
    } else if ((m = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(rest))) {
      out.push({ k: "num", v: m[0], at: i });
    } else if ((m = /^[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*)*/.exec(rest))) {
      out.push({ k: "id", v: m[0], at: i });
    } else if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new ConditionSyntaxError(`unterminated string starting at character ${i + 1}`);
      out.push({ k: "str", v: src.slice(i + 1, end), at: i });
      i = end + 1;
      continue;
    } else {
      throw new ConditionSyntaxError(`unexpected character ${JSON.stringify(c)} at character ${i + 1}`);
    }
    i += m[0].length;
  }
  return out;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly src: string,
  ) {}

  parse(): Node {
    if (this.tokens.length === 0) throw new ConditionSyntaxError("empty condition");
    const node = this.or();
    const extra = this.tokens[this.pos];
    if (extra)
      throw new ConditionSyntaxError(`unexpected ${JSON.stringify(extra.v)} at character ${extra.at + 1}`);
    return node;
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isWord(word: string, sym: string): boolean {
    const t = this.peek();
    return t !== undefined && ((t.k === "id" && t.v === word) || (t.k === "op" && t.v === sym));
  }

  private or(): Node {
    let l = this.and();
    while (this.isWord("or", "||")) {
      this.pos++;
      l = { t: "or", l, r: this.and() };
    }
    return l;
  }

  private and(): Node {
    let l = this.unary();
    while (this.isWord("and", "&&")) {
      this.pos++;
      l = { t: "and", l, r: this.unary() };
    }
    return l;
  }

  private unary(): Node {
    if (this.isWord("not", "!")) {
      this.pos++;
      return { t: "not", e: this.unary() };
    }
    const t = this.peek();
    if (t?.k === "punct" && t.v === "(") {
      this.pos++;
      const e = this.or();
      const close = this.peek();
      if (close?.k !== "punct" || close.v !== ")")
        throw new ConditionSyntaxError(`missing ")" in ${JSON.stringify(this.src)}`);
      this.pos++;
      return e;
    }
    return this.comparison();
  }

  private comparison(): Node {
    const id = this.peek();
    if (id?.k !== "id" || ["and", "or", "not", "true", "false"].includes(id.v)) {
      throw new ConditionSyntaxError(
        id
          ? `expected an argument name at character ${id.at + 1}, found ${JSON.stringify(id.v)}`
          : "expected an argument name at the end",
      );
    }
    this.pos++;
    const op = this.peek();
    if (op?.k !== "op" || !["<", "<=", ">", ">=", "==", "!="].includes(op.v)) {
      throw new ConditionSyntaxError(
        `expected a comparison (>, >=, <, <=, ==, !=) after ${JSON.stringify(id.v)}`,
      );
    }
    this.pos++;
    const litTok = this.peek();
    this.pos++;
    let lit: Literal;
    if (litTok?.k === "num") {
      const value = parseDecimal(litTok.v);
      if (!value) throw new ConditionSyntaxError(`number ${litTok.v} is out of range`);
      lit = { kind: "decimal", value, text: litTok.v };
    } else if (litTok?.k === "str") {
      lit = { kind: "string", value: litTok.v };
    } else if (litTok?.k === "id" && (litTok.v === "true" || litTok.v === "false")) {
      lit = { kind: "boolean", value: litTok.v === "true" };
    } else {
      throw new ConditionSyntaxError(
        `expected a number, a quoted string, true or false after ${JSON.stringify(`${id.v} ${op.v}`)}`,
      );
    }
    if (lit.kind !== "decimal" && op.v !== "==" && op.v !== "!=") {
      throw new ConditionSyntaxError(`${op.v} compares numbers only; use == or != with ${lit.kind}s`);
    }
    return { t: "cmp", path: id.v.split("."), op: op.v as Op, lit };
  }
}

function valueAt(args: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let cur: unknown = args;
  for (const seg of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, seg))
      return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function compare(value: unknown, op: Op, lit: Literal): boolean {
  // An absent argument matches nothing except `!=`; put a constraint on arguments a rule must see.
  if (value === undefined || value === null) return op === "!=";
  if (lit.kind === "decimal") {
    const d = parseDecimal(value);
    if (!d) {
      // Present but not a number: ordering rules fail closed (the call goes to a human).
      return op !== "==";
    }
    const c = compareDecimal(d, lit.value);
    switch (op) {
      case ">":
        return c > 0;
      case ">=":
        return c >= 0;
      case "<":
        return c < 0;
      case "<=":
        return c <= 0;
      case "==":
        return c === 0;
      case "!=":
        return c !== 0;
    }
  }
  const equal = value === lit.value;
  return op === "==" ? equal : !equal;
}

function evaluate(node: Node, args: Readonly<Record<string, unknown>>): boolean {
  switch (node.t) {
    case "and":
      return evaluate(node.l, args) && evaluate(node.r, args);
    case "or":
      return evaluate(node.l, args) || evaluate(node.r, args);
    case "not":
      return !evaluate(node.e, args);
    case "cmp":
      return compare(valueAt(args, node.path), node.op, node.lit);
  }
}

function collect(node: Node, out: Condition["comparisons"][number][]): void {
  if (node.t === "cmp") out.push({ path: node.path, literal: node.lit.kind, op: node.op });
  else if (node.t === "not") collect(node.e, out);
  else {
    collect(node.l, out);
    collect(node.r, out);
  }
}

/** Parses a condition; throws ConditionSyntaxError with a message that says where and what. */
export function parseCondition(source: string): Condition {
  if (source.length > MAX_CONDITION_CHARS)
    throw new ConditionSyntaxError(`condition is longer than ${MAX_CONDITION_CHARS} characters`);
  const ast = new Parser(tokenize(source), source).parse();
  const comparisons: Condition["comparisons"][number][] = [];
  collect(ast, comparisons);
  return {
    source,
    paths: comparisons.map((c) => c.path),
    comparisons,
    test: (args) => evaluate(ast, args),
  };
}
