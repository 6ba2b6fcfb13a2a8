/**
 * Exact decimal numbers for money and large integers. JavaScript numbers cannot represent 0.1
 * or integers past 2^53 exactly, so limits like `amount > 200.00` are compared on scaled BigInts.
 */
export interface Decimal {
  /** The value times 10^scale, as an integer. */
  readonly units: bigint;
  readonly scale: number;
}

/** Longest decimal text accepted; longer input is refused instead of parsed (untrusted input). */
const MAX_DECIMAL_CHARS = 64;
const MAX_EXPONENT = 40;
const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** Parses `"200.00"`, `"-3"`, `"1e3"` or a finite JSON number; undefined when it is not a decimal. */
export function parseDecimal(value: unknown): Decimal | undefined {
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    // The shortest round-trip rendering is what the sender most likely wrote.
    text = String(value);
  } else if (typeof value === "string") {
    text = value.trim();
  } else if (typeof value === "bigint") {
    text = value.toString();
  } else {
    return undefined;
  }
  if (text.length === 0 || text.length > MAX_DECIMAL_CHARS) return undefined;
  const m = DECIMAL_TEXT.exec(text);
  if (!m) return undefined;
  const sign = m[1] === "-" ? -1n : 1n;
  const intPart = m[2]!;
  const fracPart = m[3] ?? "";
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > MAX_EXPONENT) return undefined;
  let units = BigInt(intPart + fracPart);
  let scale = fracPart.length - exp;
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: sign * units, scale };
}

/** -1, 0 or 1, exactly. */
export function compareDecimal(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = a.units * 10n ** BigInt(scale - a.scale);
  const y = b.units * 10n ** BigInt(scale - b.scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Decimal places actually used (trailing zeros ignored): `"12.50"` → 1. */
export function significantScale(d: Decimal): number {
  let { units, scale } = d;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale--;
  }
  return scale;
}

export function formatDecimal(d: Decimal): string {
  const negative = d.units < 0n;
  const digits = (negative ? -d.units : d.units).toString().padStart(d.scale + 1, "0");
  const int = digits.slice(0, digits.length - d.scale);
  const frac = d.scale > 0 ? `.${digits.slice(digits.length - d.scale)}` : "";
  return `${negative ? "-" : ""}${int}${frac}`;
}
