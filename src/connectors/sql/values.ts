/**
 * Turns driver values into JSON that means the same thing. JavaScript numbers lose precision
 * past 2^53, so integers beyond that range (and every decimal, which drivers already hand over
 * as text) travel as decimal strings; dates as ISO-8601 strings; bytes as base64 with a marker
 * so an agent cannot mistake them for text.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface BinaryValue {
  [key: string]: string;
  $base64: string;
}

export function toJsonValue(value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    case "object":
      break;
    default:
      return String(value);
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return { $base64: Buffer.from(value).toString("base64") } as BinaryValue;
  if (Array.isArray(value)) return value.map(toJsonValue);
  const obj = value as { toISOString?: unknown; toJSON?: unknown };
  // postgres-interval and similar driver types render themselves.
  if (typeof obj.toISOString === "function") return String((obj.toISOString as () => unknown).call(obj));
  if (typeof obj.toJSON === "function") return toJsonValue((obj.toJSON as () => unknown).call(obj));
  const out: { [key: string]: JsonValue } = {};
  for (const [k, v] of Object.entries(value)) setOwn(out, k, toJsonValue(v));
  return out;
}

/** Defines rather than assigns, so a column or key named `__proto__` stays data. */
function setOwn(target: Record<string, JsonValue>, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Collects rows until the row cap or the byte cap would be passed. The byte count is the size
 * of the `rows` array serialised as JSON, so the cap bounds what reaches the agent.
 */
export class RowCollector {
  readonly rows: Record<string, JsonValue>[] = [];
  truncated = false;
  private bytes = 2; // "[]"
  private readonly maxRows: number;
  private readonly maxBytes: number;

  constructor(maxRows: number, maxBytes: number) {
    this.maxRows = maxRows;
    this.maxBytes = maxBytes;
  }

  /** Adds a row; returns false (and marks the result truncated) once the result is full. */
  add(raw: Record<string, unknown>): boolean {
    if (this.truncated) return false;
    if (this.rows.length >= this.maxRows) {
      this.truncated = true;
      return false;
    }
    const row: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(raw)) setOwn(row, k, toJsonValue(v));
    const size = Buffer.byteLength(JSON.stringify(row)) + (this.rows.length > 0 ? 1 : 0);
    if (this.bytes + size > this.maxBytes) {
      this.truncated = true;
      return false;
    }
    this.bytes += size;
    this.rows.push(row);
    return true;
  }
}
