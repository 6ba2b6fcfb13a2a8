import type { Health } from "../../core/index.js";
import type { JsonValue } from "./values.js";

export type EngineName = "sqlite" | "postgres" | "mysql";

export interface ColumnInfo {
  readonly name: string;
  readonly type?: string;
}

export type ExecResult =
  | {
      readonly kind: "rows";
      readonly rows: Record<string, JsonValue>[];
      readonly truncated: boolean;
      readonly columns: readonly ColumnInfo[];
      /** Set for writes that return rows (`... RETURNING`). */
      readonly rowsAffected?: number;
    }
  | { readonly kind: "write"; readonly rowsAffected: number; readonly lastInsertId?: JsonValue };

export interface ExecRequest {
  /** Stable handle of a declared statement (SQLite keeps it prepared), or undefined for free-form SQL. */
  readonly key: string | undefined;
  /** Engine-native SQL text (placeholders already translated). */
  readonly sql: string;
  readonly params: readonly unknown[];
  /** Run on a read-only connection / in a read-only transaction. */
  readonly readOnly: boolean;
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** One database behind a connector. Implementations throw SqlFailure, never raw driver errors. */
export interface Engine {
  readonly name: EngineName;
  execute(req: ExecRequest): Promise<ExecResult>;
  health(timeoutMs: number): Promise<Health>;
  close(): Promise<void>;
}

/**
 * Why a statement failed, decided by the engine from its driver's codes. The connector turns
 * it into a GatewayError whose code depends on who wrote the SQL: a syntax error in the agent's
 * free-form query blames the request, the same error in a declared statement blames the backend.
 */
export type FailureCategory =
  | "unavailable" // cannot reach or authenticate to the database
  | "timeout" // the time budget ran out and the work was stopped
  | "aborted" // the caller's signal fired and the work was stopped
  | "syntax" // the SQL does not parse or names unknown tables/columns
  | "readonly" // a write was attempted where only reads are allowed
  | "constraint" // the data refused the change (unique, foreign key, check, not null)
  | "data" // a value the caller passed is invalid for its column (bad number, date, uuid)
  | "sql"; // any other error the database reported

export class SqlFailure extends Error {
  override readonly name = "SqlFailure";
  readonly category: FailureCategory;
  /** The driver's code (SQLSTATE, errno name, SQLITE_*), safe to show. */
  readonly dbCode: string | undefined;
  constructor(category: FailureCategory, message: string, dbCode?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.category = category;
    this.dbCode = dbCode;
  }
}

/** The statement ran and the server reported an error: the connection is still usable. */
export function connectionIntact(f: SqlFailure): boolean {
  return (
    f.category === "syntax" ||
    f.category === "readonly" ||
    f.category === "constraint" ||
    f.category === "data" ||
    f.category === "sql"
  );
}

/** A pool that gave no connection within the budget means the database is unreachable, not slow SQL. */
export function connectFailure(f: SqlFailure, cause: unknown): SqlFailure {
  return f.category === "timeout"
    ? new SqlFailure(
        "unavailable",
        "database unreachable (no connection within the time budget)",
        undefined,
        cause,
      )
    : f;
}

/** First line of a database message, without credentials in URLs, capped in length. */
export function sanitizeDbMessage(message: unknown): string {
  const text = String(message ?? "")
    .split("\n")[0]!
    .replace(/[a-z][a-z0-9+.-]*:\/\/[^\s/@]*@/gi, "<redacted>@")
    .replace(/password[=:]\s*\S+/gi, "password=<redacted>")
    .trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
