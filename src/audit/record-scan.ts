/**
 * A check of one stored record without JSON.parse, for the fast verification path: building the
 * event's objects costs more than everything else verification does per record. It answers only
 * "certainly what the exact check (parseRecord + checkRecord) accepts" (true) or "look closer"
 * (false); on false the caller runs the exact check, so an unusual but valid record costs time,
 * never a wrong answer.
 *
 * It reads the record's UTF-8 bytes; the caller has made sure, by its hash, that they are exactly
 * the stored ones. True means:
 *   - the bytes are `{"event":` E `,"prev":"<prev hex>","seq":<seq>,"v":1}` with E one JSON
 *     object, so JSON.parse gives exactly the members event, prev, seq (= seq) and v (= 1);
 *   - E is valid JSON: a validator for the canonical subset (no whitespace, nesting <= 64). Bytes
 *     >= 0x80 are allowed in strings only: there they decode to characters (or U+FFFD), which
 *     JSON allows, and no UTF-8 decoder merges an ASCII byte into one, so the structure seen here
 *     is the one JSON.parse sees in the decoded text;
 *   - `columns`, SQLite's json_array(time, type, call_id, subject, connector, tool, outcome) of
 *     the row, is byte for byte the array of what columnsOf(event) gives. The values are compared
 *     as E writes them, so equal bytes mean equal strings; SQLite escapes strings as RFC 8785
 *     does for everything an event of ours holds.
 * Whitespace, an escaped or repeated name among the members the columns come from, other escaping
 * in SQLite's output or deeper nesting answer false.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MAX_DEPTH = 64;

const codes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const PREFIX = codes('{"event":');
const PREV_PART = codes(',"prev":"');
const SEQ_PART = codes('","seq":');
const END_PART = codes(',"v":1}');
const TRUE = codes("true");
const FALSE = codes("false");
const NULL = codes("null");
const EMPTY = codes('""');
const DENIED = codes('"denied"');

// Member names whose values feed the query columns: 0-7 are members of the event, 8-10 of its
// identity, outcome and decision objects.
const NAMES = ["time", "type", "callId", "connector", "tool", "identity", "outcome", "decision", "subject", "status", "allowed"].map(codes);
const TIME = 0;
const TYPE = 1;
const CALL_ID = 2;
const CONNECTOR = 3;
const TOOL = 4;
const IDENTITY = 5;
const SUBJECT = 8;
const STATUS = 9;
const ALLOWED = 10;

// Where the values of NAMES are in the record being checked (-1: absent). Single-threaded.
const starts = new Int32Array(NAMES.length);
const ends = new Int32Array(NAMES.length);

// The validator: each function takes the position of a value's first byte and returns the
// position after it, or -1. The record's suffix, checked before, bounds every loop: the first
// byte after the event is a comma and the second a quote. A value ending past the event is refused
// by its caller.

/** 1 for the bytes a string holds as they are: not a quote, a backslash or a control character. */
const PLAIN = new Uint8Array(256).map((_, c) => (c === QUOTE || c === BACKSLASH || c < 0x20 ? 0 : 1));

function isDigit(c: number): boolean {
  return c >= DIGIT_0 && c <= DIGIT_9;
}

function isHex(c: number): boolean {
  return (c >= DIGIT_0 && c <= DIGIT_9) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** A string (its quote at i). With `plain`, an escape sequence answers -1 (for member names). */
function string(t: Uint8Array, i: number, end: number, plain: boolean): number {
  i++;
  for (;;) {
    // The hot loop, with no bound: it stops at the suffix's quote at the latest.
    let c = t[i]!;
    while (PLAIN[c] === 1) c = t[++i]!;
    if (c === QUOTE) return i + 1;
    // A control character: they must be escaped.
    if (c !== BACKSLASH || plain) return -1;
    const e = t[i + 1]!;
    if (e === 0x75) {
      // \uXXXX
      if (!isHex(t[i + 2]!) || !isHex(t[i + 3]!) || !isHex(t[i + 4]!) || !isHex(t[i + 5]!)) {
        return -1;
      }
      i += 6;
    } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      // \" \\ \/ \b \f \n \r \t
      i += 2;
    } else {
      return -1;
    }
    if (i >= end) return -1;
  }
}

function digits(t: Uint8Array, i: number): number {
  if (!isDigit(t[i]!)) return -1;
  i++;
  while (isDigit(t[i]!)) i++;
  return i;
}

function number(t: Uint8Array, i: number): number {
  if (t[i]! === MINUS) i++;
  if (t[i]! === DIGIT_0) i++;
  else if ((i = digits(t, i)) < 0) return -1;
  if (t[i]! === DOT && (i = digits(t, i + 1)) < 0) return -1;
  const c = t[i]!;
  if (c === 0x65 || c === 0x45) {
    i++;
    const sign = t[i]!;
    if (sign === PLUS || sign === MINUS) i++;
    i = digits(t, i);
  }
  return i;
}

function literal(t: Uint8Array, i: number, text: Uint8Array): number {
  for (let k = 0; k < text.length; k++) if (t[i + k]! !== text[k]) return -1;
  return i + text.length;
}

function value(t: Uint8Array, i: number, end: number, depth: number): number {
  const c = t[i]!;
  if (c === QUOTE) return string(t, i, end, false);
  if (c === LBRACE) return object(t, i, end, depth + 1, 0, 0);
  if (c === LBRACKET) return array(t, i, end, depth + 1);
  if (c === 0x74) return literal(t, i, TRUE);
  if (c === 0x66) return literal(t, i, FALSE);
  if (c === 0x6e) return literal(t, i, NULL);
  return c === MINUS || isDigit(c) ? number(t, i) : -1;
}

function array(t: Uint8Array, i: number, end: number, depth: number): number {
  if (depth > MAX_DEPTH) return -1;
  i++;
  if (t[i]! === RBRACKET) return i + 1;
  for (;;) {
    i = value(t, i, end, depth);
    if (i < 0 || i >= end) return -1;
    const c = t[i++]!;
    if (c === RBRACKET) return i;
    if (c !== COMMA) return -1;
  }
}

/** Index of the member name at [from, to) among NAMES[first, first + count), or -1. */
function nameIndex(t: Uint8Array, from: number, to: number, first: number, count: number): number {
  const length = to - from;
  const initial = t[from]!;
  for (let n = first; n < first + count; n++) {
    const name = NAMES[n]!;
    if (name.length !== length || name[0] !== initial) continue;
    let k = 1;
    while (k < length && t[from + k]! === name[k]) k++;
    if (k === length) return n;
  }
  return -1;
}

/**
 * An object. Records where the values of the members NAMES[first, first + count) are; refuses
 * (-1) a repeated one, and an escaped member name, which could spell one of them.
 */
function object(t: Uint8Array, i: number, end: number, depth: number, first: number, count: number): number {
  if (depth > MAX_DEPTH) return -1;
  i++;
  if (t[i]! === RBRACE) return i + 1;
  for (;;) {
    if (t[i]! !== QUOTE) return -1;
    const nameStart = i + 1;
    i = string(t, i, end, count > 0);
    if (i < 0 || i >= end || t[i]! !== COLON) return -1;
    const member = count > 0 ? nameIndex(t, nameStart, i - 1, first, count) : -1;
    i++;
    if (member < 0) {
      i = value(t, i, end, depth);
    } else {
      if (starts[member] !== -1) return -1;
      const start = i;
      // identity.subject, outcome.status, decision.allowed
      i =
        member >= IDENTITY && member < SUBJECT && t[i]! === LBRACE
          ? object(t, i, end, depth + 1, SUBJECT + member - IDENTITY, 1)
          : value(t, i, end, depth);
      starts[member] = start;
      ends[member] = i;
    }
    if (i < 0 || i >= end) return -1;
    const c = t[i++]!;
    if (c === RBRACE) return i;
    if (c !== COMMA) return -1;
  }
}

/**
 * Compares the column text at `at` (after a `separator`, if given) with the member's value if
 * that is a string, else with `otherwise`. The position after it, or -1 (also when `at` is -1).
 */
function columnAt(t: Uint8Array, at: number, member: number, otherwise: Uint8Array, separator = -1): number {
  if (at < 0) return -1;
  if (separator !== -1 && t[at++]! !== separator) return -1;
  const start = starts[member]!;
  if (start === -1 || t[start]! !== QUOTE) return literal(t, at, otherwise);
  const length = ends[member]! - start;
  for (let k = 0; k < length; k++) if (t[at + k]! !== t[start + k]!) return -1;
  return at + length;
}

const HEX = codes("0123456789abcdef");

/**
 * True when `bytes[bodyStart, bodyEnd)` is record number `seq` chained to `prev` (the previous
 * record's hash as a 32-character latin1 string), and `bytes[colsStart, colsEnd)` its query
 * columns as SQLite's json_array writes them. See the file comment.
 */
export function recordMatches(
  bytes: Uint8Array,
  colsStart: number,
  colsEnd: number,
  bodyStart: number,
  bodyEnd: number,
  seq: number,
  prev: string,
): boolean {
  // The envelope: a fixed prefix, and everything after the event compared byte for byte.
  if (bodyEnd > bytes.length || prev.length !== 32 || !Number.isSafeInteger(seq) || seq < 0) return false;
  let at = bodyEnd - END_PART.length;
  if (literal(bytes, at, END_PART) !== bodyEnd) return false;
  // seq, in decimal, backwards
  let rest = seq;
  do {
    if (bytes[--at]! !== DIGIT_0 + (rest % 10)) return false;
    rest = Math.floor(rest / 10);
  } while (rest > 0);
  at -= SEQ_PART.length;
  if (literal(bytes, at, SEQ_PART) < 0) return false;
  at -= 64;
  for (let k = 0; k < 32; k++) {
    const byte = prev.charCodeAt(k);
    if (bytes[at + 2 * k]! !== HEX[byte >> 4] || bytes[at + 2 * k + 1]! !== HEX[byte & 15]) return false;
  }
  const eventEnd = at - PREV_PART.length;
  const eventStart = bodyStart + PREFIX.length;
  if (eventEnd < eventStart + 2 || literal(bytes, eventEnd, PREV_PART) < 0 || literal(bytes, bodyStart, PREFIX) < 0) return false;

  // The event: one valid JSON object filling exactly the space before the suffix.
  for (let n = 0; n < starts.length; n++) starts[n] = -1;
  if (bytes[eventStart]! !== LBRACE || object(bytes, eventStart, eventEnd, 1, 0, IDENTITY + 3) !== eventEnd) return false;

  // The columns, as columnsOf(event) gives them: [time,type,callId,subject,connector,tool,outcome].
  // outcome: outcome.status if it is a string, else "denied" when decision.allowed is false, else null.
  const allowed = starts[ALLOWED]!;
  const denied = allowed !== -1 && ends[ALLOWED]! - allowed === FALSE.length && bytes[allowed]! === 0x66;
  if (bytes[colsStart]! !== LBRACKET) return false;
  at = columnAt(bytes, colsStart + 1, TIME, EMPTY);
  at = columnAt(bytes, at, TYPE, EMPTY, COMMA);
  at = columnAt(bytes, at, CALL_ID, NULL, COMMA);
  at = columnAt(bytes, at, SUBJECT, NULL, COMMA);
  at = columnAt(bytes, at, CONNECTOR, NULL, COMMA);
  at = columnAt(bytes, at, TOOL, NULL, COMMA);
  at = columnAt(bytes, at, STATUS, denied ? DENIED : NULL, COMMA);
  return at === colsEnd - 1 && bytes[at]! === RBRACKET;
}
