/**
 * A small SQL lexer, just precise enough to find what matters to us outside of string literals,
 * quoted identifiers and comments: named parameters (`:name`), positional placeholders,
 * statement separators and keywords. It follows each engine's quoting rules, because a `:x` or a
 * `;` inside `'...'`, `"..."`, `` `...` ``, `$tag$...$tag$` or a comment is text, not syntax.
 */

export type Dialect = "sqlite" | "postgres" | "mysql";

export type TokenKind =
  "ws" | "comment" | "string" | "ident" | "word" | "number" | "param" | "positional" | "semicolon" | "op";

export interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly start: number;
  readonly end: number;
  /** MySQL `/*! ... *\/` and MariaDB `/*M! ... *\/` comments: the server executes their content. */
  readonly executable?: boolean;
}

export class SqlLexError extends Error {
  override readonly name = "SqlLexError";
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

const isIdentStart = (c: string): boolean => /[A-Za-z_]/.test(c) || c.charCodeAt(0) > 127;
const isIdentPart = (c: string, dialect: Dialect): boolean =>
  /[A-Za-z0-9_]/.test(c) || c.charCodeAt(0) > 127 || (c === "$" && dialect !== "sqlite");
const isDigit = (c: string): boolean => c >= "0" && c <= "9";

export function tokenize(sql: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  const push = (kind: TokenKind, start: number, end: number, executable?: boolean): void => {
    tokens.push({ kind, text: sql.slice(start, end), start, end, ...(executable ? { executable } : {}) });
  };

  /** Scans a quoted run starting at the opening quote; returns the index after the closing quote. */
  const quoted = (start: number, quote: string, backslash: boolean, what: string): number => {
    let j = start + 1;
    while (j < n) {
      const c = sql[j]!;
      if (backslash && c === "\\") {
        j += 2;
        continue;
      }
      if (c === quote) {
        if (sql[j + 1] === quote) {
          j += 2;
          continue;
        }
        return j + 1;
      }
      j++;
    }
    throw new SqlLexError(`unterminated ${what}`, start);
  };

  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1] ?? "";
    const start = i;

    if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i]!)) i++;
      push("ws", start, i);
      continue;
    }

    // Line comments. MySQL needs whitespace (or the end) after `--`; elsewhere `--` always starts one.
    if (
      (c === "-" && next === "-" && (dialect !== "mysql" || i + 2 >= n || /\s/.test(sql[i + 2]!))) ||
      (c === "#" && dialect === "mysql")
    ) {
      while (i < n && sql[i] !== "\n") i++;
      push("comment", start, i);
      continue;
    }

    if (c === "/" && next === "*") {
      const executable = dialect === "mysql" && (sql[i + 2] === "!" || sql.startsWith("M!", i + 2));
      // PostgreSQL nests block comments; the others end at the first `*/`.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === "*" && sql[i + 1] === "/") {
          depth--;
          i += 2;
        } else if (dialect === "postgres" && sql[i] === "/" && sql[i + 1] === "*") {
          depth++;
          i += 2;
        } else i++;
      }
      if (depth > 0) throw new SqlLexError("unterminated block comment", start);
      push("comment", start, i, executable);
      continue;
    }

    if (c === "'") {
      i = quoted(i, "'", dialect === "mysql", "string literal");
      push("string", start, i);
      continue;
    }

    if (c === '"') {
      // MySQL reads "..." as a string (with backslash escapes) unless ANSI_QUOTES; either way it is opaque.
      i = quoted(i, '"', dialect === "mysql", "quoted identifier");
      push(dialect === "mysql" ? "string" : "ident", start, i);
      continue;
    }

    if (c === "`" && dialect !== "postgres") {
      i = quoted(i, "`", false, "quoted identifier");
      push("ident", start, i);
      continue;
    }

    if (c === "[" && dialect === "sqlite") {
      const close = sql.indexOf("]", i + 1);
      if (close < 0) throw new SqlLexError("unterminated quoted identifier", start);
      i = close + 1;
      push("ident", start, i);
      continue;
    }

    if (c === "$" && dialect === "postgres") {
      if (isDigit(next)) {
        i++;
        while (i < n && isDigit(sql[i]!)) i++;
        push("positional", start, i);
        continue;
      }
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        if (close < 0) throw new SqlLexError("unterminated dollar-quoted string", start);
        i = close + tag[0].length;
        push("string", start, i);
        continue;
      }
    }

    if (dialect === "sqlite" && (c === "$" || c === "@") && isIdentStart(next)) {
      i++;
      while (i < n && isIdentPart(sql[i]!, dialect)) i++;
      push("positional", start, i);
      continue;
    }

    if (c === "?" && dialect !== "postgres") {
      i++;
      while (i < n && isDigit(sql[i]!)) i++;
      push("positional", start, i);
      continue;
    }

    if (c === ":") {
      if (next === ":") {
        // A PostgreSQL cast (`x::int`): never a parameter.
        i += 2;
        push("op", start, i);
        continue;
      }
      if (isIdentStart(next)) {
        i++;
        while (i < n && isIdentPart(sql[i]!, "sqlite")) i++;
        push("param", start, i);
        continue;
      }
      i++;
      push("op", start, i);
      continue;
    }

    if (c === ";") {
      i++;
      push("semicolon", start, i);
      continue;
    }

    if (isDigit(c) || (c === "." && isDigit(next))) {
      while (i < n && /[0-9A-Za-z_.]/.test(sql[i]!)) {
        // Exponent sign: 1e-5.
        if ((sql[i] === "e" || sql[i] === "E") && (sql[i + 1] === "-" || sql[i + 1] === "+")) i++;
        i++;
      }
      push("number", start, i);
      continue;
    }

    if (isIdentStart(c)) {
      i++;
      while (i < n && isIdentPart(sql[i]!, dialect)) i++;
      const word = sql.slice(start, i);
      // Prefixed literals: E'..' (PostgreSQL escapes), X'..', B'..', N'..', U&'..'.
      if (sql[i] === "'" && /^[EeXxBbNn]$/.test(word)) {
        const escapes = dialect === "mysql" || word === "E" || word === "e";
        i = quoted(i, "'", escapes, "string literal");
        push("string", start, i);
        continue;
      }
      if (word.length === 1 && (word === "U" || word === "u") && sql[i] === "&" && sql[i + 1] === "'") {
        i = quoted(i + 1, "'", false, "string literal");
        push("string", start, i);
        continue;
      }
      push("word", start, i);
      continue;
    }

    i++;
    push("op", start, i);
  }
  return tokens;
}

/** Tokens that carry meaning (no whitespace, no comments). */
export function significant(tokens: readonly Token[]): Token[] {
  return tokens.filter((t) => t.kind !== "ws" && t.kind !== "comment");
}
