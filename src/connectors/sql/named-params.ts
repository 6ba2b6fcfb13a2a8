import { tokenize, type Dialect } from "./lexer.js";

/** A declared statement rewritten into the engine's own placeholder syntax. */
export interface TranslatedStatement {
  /** SQL text with `$1..$n` (PostgreSQL) or `?` (SQLite, MySQL) in place of `:name`. */
  readonly text: string;
  /** Parameter name for each bound value, in binding order. */
  readonly order: readonly string[];
  /** Every distinct parameter name the statement uses. */
  readonly used: ReadonlySet<string>;
}

export class StatementError extends Error {
  override readonly name = "StatementError";
}

/**
 * Rewrites `:name` placeholders for the engine. Values are always bound, never spliced: this
 * only ever emits placeholders. Positional placeholders written by hand are refused, because
 * mixing them with named ones would silently shift which value lands where.
 */
export function translateNamed(sql: string, dialect: Dialect): TranslatedStatement {
  let tokens;
  try {
    tokens = tokenize(sql, dialect);
  } catch (err) {
    throw new StatementError((err as Error).message);
  }
  const order: string[] = [];
  const index = new Map<string, number>();
  let text = "";
  for (const t of tokens) {
    if (t.kind === "positional") {
      throw new StatementError(
        `positional placeholder ${t.text} is not supported; use named parameters (:name)`,
      );
    }
    if (t.kind !== "param") {
      text += t.text;
      continue;
    }
    const name = t.text.slice(1);
    if (dialect === "postgres") {
      let n = index.get(name);
      if (n === undefined) {
        order.push(name);
        n = order.length;
        index.set(name, n);
      }
      text += `$${n}`;
    } else {
      order.push(name);
      index.set(name, order.length);
      text += "?";
    }
  }
  return { text, order, used: new Set(index.keys()) };
}
