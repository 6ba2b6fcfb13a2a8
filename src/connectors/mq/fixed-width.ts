import type { FixedField } from "./config.js";

/**
 * Fixed-width text records, as mainframe programs exchange them (a COBOL copybook of PIC X and
 * PIC S9(n)V9(m) DISPLAY fields). Encoding and decoding are exact: nothing is truncated, rounded
 * or guessed, and a value that does not fit is refused with the field's name. Numbers are decimal
 * strings on the JSON side because money must never pass through a float.
 */

export type RecordEncoding = "ascii" | "latin1" | "utf8";

type Sign = NonNullable<FixedField["sign"]>;

export interface CompiledField {
  readonly name: string;
  readonly type: FixedField["type"];
  readonly length: number;
  readonly offset: number;
  readonly decimals: number;
  readonly sign: Sign;
  readonly jsonType: "string" | "integer";
  readonly pad: string;
  readonly justify: "left" | "right";
  readonly default: string | undefined;
  /** Digit positions (numeric): the width less a separate sign byte. */
  readonly digits: number;
}

export interface CompiledLayout {
  readonly fields: readonly CompiledField[];
  readonly length: number;
  readonly encoding: RecordEncoding;
}

/** A value that does not fit its field, or a record that does not match its layout. */
export class RecordError extends Error {
  override readonly name = "RecordError";
  readonly field: string | undefined;
  constructor(field: string | undefined, message: string) {
    super(field === undefined ? message : `field "${field}": ${message}`);
    this.field = field;
  }
}

const POSITIVE_OVERPUNCH = "{ABCDEFGHI";
const NEGATIVE_OVERPUNCH = "}JKLMNOPQR";
/** COBOL's ceiling for DISPLAY numerics (ARITH(EXTEND)). */
const MAX_DIGITS = 31;
/** Largest digit count that survives a JSON number exactly. */
const MAX_INTEGER_DIGITS = 15;

/** Checks a layout and resolves its defaults. Returns the problems instead of throwing, for config errors. */
export function compileLayout(
  fields: readonly FixedField[],
  encoding: RecordEncoding,
): { layout: CompiledLayout; problems: { index: number; key: string; message: string }[] } {
  const problems: { index: number; key: string; message: string }[] = [];
  const seen = new Set<string>();
  const compiled: CompiledField[] = [];
  let offset = 0;
  fields.forEach((f, index) => {
    const numeric = f.type === "numeric";
    const sign: Sign = f.sign ?? "none";
    const separate = sign === "leading-separate" || sign === "trailing-separate";
    const decimals = f.decimals ?? 0;
    const digits = numeric ? f.length - (separate ? 1 : 0) : 0;
    const pad = f.pad ?? (numeric ? "0" : " ");
    const justify = f.justify ?? (numeric ? "right" : "left");
    const field: CompiledField = {
      name: f.name,
      type: f.type,
      length: f.length,
      offset,
      decimals,
      sign,
      jsonType: f.jsonType ?? "string",
      pad,
      justify,
      default: f.default,
      digits,
    };
    offset += f.length;
    if (f.type !== "filler") {
      if (seen.has(f.name))
        problems.push({ index, key: "name", message: `duplicate field name "${f.name}"` });
      seen.add(f.name);
    }
    if (!numeric) {
      for (const key of ["decimals", "sign", "jsonType"] as const) {
        if (f[key] !== undefined)
          problems.push({ index, key, message: `${key} applies to numeric fields only` });
      }
    } else {
      if (digits < 1)
        problems.push({ index, key: "length", message: "a separate sign needs a length of at least 2" });
      if (digits > MAX_DIGITS)
        problems.push({ index, key: "length", message: `at most ${MAX_DIGITS} digits` });
      if (decimals > digits)
        problems.push({ index, key: "decimals", message: `more decimals than the ${digits} digits` });
      if (field.jsonType === "integer" && (decimals > 0 || digits > MAX_INTEGER_DIGITS)) {
        problems.push({
          index,
          key: "jsonType",
          message: `integer needs decimals 0 and at most ${MAX_INTEGER_DIGITS} digits (use "string" to keep it exact)`,
        });
      }
      if (pad !== "0" && pad !== " ")
        problems.push({ index, key: "pad", message: `numeric fields pad with "0" or " "` });
      if (pad === "0" && justify === "left") {
        problems.push({
          index,
          key: "justify",
          message: "left-justified zero padding would change the value",
        });
      }
      if (pad !== "0" && (sign === "leading-overpunch" || sign === "trailing-overpunch")) {
        problems.push({ index, key: "pad", message: "an overpunched sign needs zero padding" });
      }
    }
    if (encodeChar(pad, encoding) === undefined) {
      problems.push({ index, key: "pad", message: `pad character is not ${encoding}` });
    }
    compiled.push(field);
  });
  const layout: CompiledLayout = { fields: compiled, length: offset, encoding };
  // A default is checked by encoding it, so a bad one fails at load rather than on the first call.
  compiled.forEach((f, index) => {
    if (f.default === undefined) return;
    if (f.type === "filler") {
      problems.push({ index, key: "default", message: "filler fields take no default" });
      return;
    }
    try {
      encodeField(f, f.default, encoding);
    } catch (err) {
      problems.push({ index, key: "default", message: (err as Error).message });
    }
  });
  return { layout, problems };
}

export function encodeRecord(layout: CompiledLayout, values: Readonly<Record<string, unknown>>): Buffer {
  const out = Buffer.alloc(layout.length);
  for (const f of layout.fields) {
    let value: unknown =
      f.type === "filler" ? undefined : Object.hasOwn(values, f.name) ? values[f.name] : undefined;
    if (value === undefined || value === null) value = f.default;
    const bytes = encodeField(f, value, layout.encoding);
    bytes.copy(out, f.offset);
  }
  return out;
}

export function decodeRecord(layout: CompiledLayout, record: Buffer): Record<string, unknown> {
  if (record.length !== layout.length) {
    throw new RecordError(undefined, `record is ${record.length} bytes, the layout defines ${layout.length}`);
  }
  const out: Record<string, unknown> = {};
  for (const f of layout.fields) {
    if (f.type === "filler") continue;
    const text = decodeText(f, record.subarray(f.offset, f.offset + f.length), layout.encoding);
    out[f.name] = f.type === "numeric" ? decodeNumeric(f, text) : unpad(f, text);
  }
  return out;
}

function encodeField(f: CompiledField, value: unknown, encoding: RecordEncoding): Buffer {
  if (f.type === "numeric") return Buffer.from(encodeNumeric(f, value), "latin1");
  if (value === undefined || value === null) return Buffer.alloc(f.length, f.pad, "latin1");
  if (typeof value !== "string") throw new RecordError(f.name, `expected a string, found ${typeof value}`);
  const bytes = encodeText(f, value, encoding);
  if (bytes.length > f.length) {
    throw new RecordError(f.name, `value is ${bytes.length} bytes, the field holds ${f.length}`);
  }
  const padding = Buffer.alloc(f.length - bytes.length, f.pad, "latin1");
  return f.justify === "left" ? Buffer.concat([bytes, padding]) : Buffer.concat([padding, bytes]);
}

function encodeText(f: CompiledField, value: string, encoding: RecordEncoding): Buffer {
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    // Control characters would be read as record or line structure by the programs on the other side.
    if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) {
      throw new RecordError(
        f.name,
        `control character U+${code.toString(16).padStart(4, "0")} is not allowed`,
      );
    }
    if (encodeChar(ch, encoding) === undefined) {
      throw new RecordError(f.name, `character "${ch}" cannot be written in ${encoding}`);
    }
  }
  return Buffer.from(value, encoding === "utf8" ? "utf8" : "latin1");
}

function encodeChar(ch: string, encoding: RecordEncoding): string | undefined {
  const code = ch.codePointAt(0)!;
  if (encoding === "ascii") return code < 0x80 ? ch : undefined;
  if (encoding === "latin1") return code < 0x100 ? ch : undefined;
  return ch;
}

const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?$/;

/** Splits a decimal string or a JSON number into sign, integer digits and fraction digits, exactly. */
function parseDecimal(f: CompiledField, value: unknown): { negative: boolean; int: string; frac: string } {
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new RecordError(f.name, "not a finite number");
    // Beyond 2^53 the number the agent wrote is not the number we received: refuse rather than guess.
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new RecordError(f.name, "integer is too large to be exact; send it as a decimal string");
    }
    text = String(value);
    if (/e/i.test(text))
      throw new RecordError(f.name, `${text} is not a plain decimal; send it as a decimal string`);
  } else if (typeof value === "string") {
    text = value.trim();
  } else {
    throw new RecordError(
      f.name,
      `expected a decimal string or number, found ${value === null ? "null" : typeof value}`,
    );
  }
  const m = DECIMAL.exec(text);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) {
    throw new RecordError(f.name, `"${text.slice(0, 40)}" is not a decimal number`);
  }
  return { negative: m[1] === "-", int: (m[2] ?? "").replace(/^0+/, ""), frac: m[3] ?? "" };
}

function encodeNumeric(f: CompiledField, value: unknown): string {
  let negative = false;
  let digits: string;
  if (value === undefined || value === null) {
    digits = "";
  } else {
    const d = parseDecimal(f, value);
    const extra = d.frac.slice(f.decimals);
    if (/[1-9]/.test(extra)) {
      throw new RecordError(
        f.name,
        `has ${d.frac.replace(/0+$/, "").length} decimal places, the field allows ${f.decimals}`,
      );
    }
    const frac = d.frac.slice(0, f.decimals).padEnd(f.decimals, "0");
    digits = `${d.int}${frac}`.replace(/^0+/, "");
    negative = d.negative && digits !== "";
    if (digits.length > f.digits) {
      const intMax = f.digits - f.decimals;
      throw new RecordError(
        f.name,
        `value ${typeof value === "string" ? value.trim() : String(value)} does not fit ${intMax} integer digit${intMax === 1 ? "" : "s"}${f.decimals > 0 ? ` and ${f.decimals} decimals` : ""}`,
      );
    }
    if (negative && f.sign === "none")
      throw new RecordError(f.name, "is unsigned; negative values do not fit");
  }
  let body: string;
  if (f.pad === "0" || digits === "") {
    body = digits.padStart(f.digits, "0");
  } else {
    body = f.justify === "right" ? digits.padStart(f.digits, f.pad) : digits.padEnd(f.digits, f.pad);
  }
  switch (f.sign) {
    case "none":
      return body;
    case "leading-separate":
      return `${negative ? "-" : "+"}${body}`;
    case "trailing-separate":
      return `${body}${negative ? "-" : "+"}`;
    case "leading-overpunch":
      return `${overpunch(body[0]!, negative)}${body.slice(1)}`;
    case "trailing-overpunch":
      return `${body.slice(0, -1)}${overpunch(body[body.length - 1]!, negative)}`;
  }
}

function overpunch(digit: string, negative: boolean): string {
  const d = digit === " " ? 0 : Number(digit);
  return (negative ? NEGATIVE_OVERPUNCH : POSITIVE_OVERPUNCH)[d]!;
}

function decodeText(f: CompiledField, bytes: Buffer, encoding: RecordEncoding): string {
  let text: string;
  if (encoding === "utf8") {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new RecordError(f.name, "is not valid UTF-8 (a character may straddle the field boundary)");
    }
  } else {
    text = bytes.toString("latin1");
    if (encoding === "ascii" && bytes.some((b) => b > 0x7f))
      throw new RecordError(f.name, "contains non-ASCII bytes");
  }
  return text;
}

function unpad(f: CompiledField, text: string): string {
  let start = 0;
  let end = text.length;
  if (f.justify === "left") while (end > 0 && text[end - 1] === f.pad) end--;
  else while (start < end && text[start] === f.pad) start++;
  return text.slice(start, end);
}

function decodeNumeric(f: CompiledField, text: string): string | number {
  let negative = false;
  let body = text;
  const show = JSON.stringify(text);
  switch (f.sign) {
    case "leading-separate":
    case "trailing-separate": {
      const s = f.sign === "leading-separate" ? text[0] : text[text.length - 1];
      if (s !== "+" && s !== "-") throw new RecordError(f.name, `expected a "+" or "-" sign in ${show}`);
      negative = s === "-";
      body = f.sign === "leading-separate" ? text.slice(1) : text.slice(0, -1);
      break;
    }
    case "leading-overpunch":
    case "trailing-overpunch": {
      const at = f.sign === "leading-overpunch" ? 0 : text.length - 1;
      const c = text[at]!;
      let digit: number;
      if (/\d/.test(c)) digit = Number(c);
      else if (POSITIVE_OVERPUNCH.includes(c)) digit = POSITIVE_OVERPUNCH.indexOf(c);
      else if (NEGATIVE_OVERPUNCH.includes(c)) {
        digit = NEGATIVE_OVERPUNCH.indexOf(c);
        negative = true;
      } else throw new RecordError(f.name, `invalid zoned sign "${c}" in ${show}`);
      body = `${text.slice(0, at)}${digit}${text.slice(at + 1)}`;
      break;
    }
    case "none":
      break;
  }
  if (f.pad !== "0") {
    body = f.justify === "right" ? body.replace(/^ +/, "") : body.replace(/ +$/, "");
    if (body === "") body = "0";
  }
  if (!/^\d+$/.test(body)) throw new RecordError(f.name, `expected digits, found ${show}`);
  const all = body.padStart(f.decimals + 1, "0");
  const int = all.slice(0, all.length - f.decimals).replace(/^0+(?=\d)/, "");
  const frac = all.slice(all.length - f.decimals);
  const isZero = /^0*$/.test(int + frac);
  const sign = negative && !isZero ? "-" : "";
  if (f.jsonType === "integer") return Number(`${sign}${int}`);
  return f.decimals > 0 ? `${sign}${int}.${frac}` : `${sign}${int}`;
}
