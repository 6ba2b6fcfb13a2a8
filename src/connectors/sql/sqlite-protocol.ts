import type { ExecResult, FailureCategory } from "./engine.js";

/** Messages between the SQLite connector and its worker processes (IPC, advanced serialisation). */

export interface DeclaredStatement {
  readonly key: string;
  readonly sql: string;
  readonly readOnly: boolean;
}

export type ChildRequest =
  | {
      readonly id: number;
      readonly op: "init";
      readonly file: string;
      readonly busyTimeoutMs: number;
      readonly statements: readonly DeclaredStatement[];
    }
  | {
      readonly id: number;
      readonly op: "exec";
      /** A declared statement's key, or undefined for free-form read-only SQL. */
      readonly key: string | undefined;
      readonly sql: string;
      readonly params: readonly unknown[];
      readonly readOnly: boolean;
      readonly maxRows: number;
      readonly maxBytes: number;
    }
  | { readonly id: number; readonly op: "ping" };

export interface ChildFailure {
  readonly category: FailureCategory;
  readonly message: string;
  readonly dbCode?: string;
  /** For init failures: the declared statement that failed. */
  readonly key?: string;
}

export type ChildResponse =
  | { readonly id: number; readonly ok: true; readonly result: ExecResult | null }
  | { readonly id: number; readonly ok: false; readonly error: ChildFailure };

/** A request before the engine numbers it. */
export type ChildRequestBody = ChildRequest extends infer R
  ? R extends ChildRequest
    ? Omit<R, "id">
    : never
  : never;
