import { describe, expect, it } from "vitest";
import type { FixedField } from "../../../src/connectors/mq/config.js";
import {
  compileLayout,
  decodeRecord,
  encodeRecord,
  RecordError,
  type RecordEncoding,
} from "../../../src/connectors/mq/fixed-width.js";

function layout(fields: FixedField[], encoding: RecordEncoding = "latin1") {
  const { layout, problems } = compileLayout(fields, encoding);
  expect(problems).toEqual([]);
  return layout;
}

const enc = (fields: FixedField[], values: Record<string, unknown>, encoding?: RecordEncoding) =>
  encodeRecord(layout(fields, encoding), values).toString("latin1");
const dec = (fields: FixedField[], text: string, encoding?: RecordEncoding) =>
  decodeRecord(layout(fields, encoding), Buffer.from(text, encoding === "utf8" ? "utf8" : "latin1"));

describe("fixed-width records: alphanumeric", () => {
  const f: FixedField[] = [{ name: "code", length: 6, type: "alphanumeric" }];

  it("pads on the right by default and trims on read", () => {
    expect(enc(f, { code: "AB" })).toBe("AB    ");
    expect(dec(f, "AB    ")).toEqual({ code: "AB" });
  });

  it("right-justifies with a custom pad", () => {
    const r: FixedField[] = [{ name: "code", length: 6, type: "alphanumeric", justify: "right", pad: "*" }];
    expect(enc(r, { code: "AB" })).toBe("****AB");
    expect(dec(r, "****AB")).toEqual({ code: "AB" });
  });

  it("keeps inner and leading spaces of a left-justified value", () => {
    expect(dec(f, " A B  ")).toEqual({ code: " A B" });
  });

  it("rejects a value that does not fit, naming the field", () => {
    expect(() => enc(f, { code: "TOOLONG" })).toThrow(/field "code": value is 7 bytes, the field holds 6/);
  });

  it("writes blanks for an absent value and uses the default when given", () => {
    expect(enc(f, {})).toBe("      ");
    expect(enc([{ name: "tx", length: 4, type: "alphanumeric", default: "OSTQ" }], {})).toBe("OSTQ");
  });

  it("rejects characters outside the record's encoding and control characters", () => {
    expect(() => enc(f, { code: "é" }, "ascii")).toThrow(
      /field "code": character "é" cannot be written in ascii/,
    );
    expect(enc(f, { code: "é" }, "latin1")).toBe("é     ");
    expect(() => enc(f, { code: "€" }, "latin1")).toThrow(/cannot be written in latin1/);
    expect(() => enc(f, { code: "a\nb" })).toThrow(/control character U\+000a/);
  });

  it("counts bytes, not characters, in utf8 records", () => {
    const u: FixedField[] = [{ name: "n", length: 4, type: "alphanumeric" }];
    expect(encodeRecord(layout(u, "utf8"), { n: "éa" }).toString("utf8")).toBe("éa ");
    expect(() => encodeRecord(layout(u, "utf8"), { n: "é€" })).toThrow(
      /field "n": value is 5 bytes, the field holds 4/,
    );
  });

  it("refuses a non-string value", () => {
    expect(() => enc(f, { code: 12 })).toThrow(/field "code": expected a string, found number/);
  });
});

describe("fixed-width records: numeric", () => {
  const money: FixedField[] = [
    { name: "amount", length: 9, type: "numeric", decimals: 2, sign: "leading-separate" },
  ];

  it("writes implied decimals exactly from decimal strings and numbers", () => {
    expect(enc(money, { amount: "1234.5" })).toBe("+00123450");
    expect(enc(money, { amount: "-0.07" })).toBe("-00000007");
    expect(enc(money, { amount: 12.3 })).toBe("+00001230");
    expect(enc(money, { amount: "12.300" })).toBe("+00001230");
  });

  it("reads them back as decimal strings, never floats", () => {
    expect(dec(money, "+00123450")).toEqual({ amount: "1234.50" });
    expect(dec(money, "-00000007")).toEqual({ amount: "-0.07" });
    expect(dec(money, "+00000000")).toEqual({ amount: "0.00" });
  });

  it("round-trips a value that a double cannot hold", () => {
    const big: FixedField[] = [{ name: "n", length: 25, type: "numeric", decimals: 4 }];
    const text = enc(big, { n: "123456789012345678901.2345" });
    expect(text).toBe("1234567890123456789012345");
    expect(dec(big, text)).toEqual({ n: "123456789012345678901.2345" });
  });

  it("rejects overflow, extra decimals and negatives in unsigned fields, naming the field", () => {
    expect(() => enc(money, { amount: "1234567.8" })).toThrow(
      /field "amount": value 1234567.8 does not fit 6 integer digits and 2 decimals/,
    );
    expect(() => enc(money, { amount: "1.005" })).toThrow(
      /field "amount": has 3 decimal places, the field allows 2/,
    );
    const unsigned: FixedField[] = [{ name: "qty", length: 3, type: "numeric" }];
    expect(() => enc(unsigned, { qty: -1 })).toThrow(/field "qty": is unsigned/);
    expect(() => enc(unsigned, { qty: "12a" })).toThrow(/field "qty": "12a" is not a decimal number/);
    expect(() => enc(unsigned, { qty: 1e21 })).toThrow(/too large to be exact/);
    expect(() => enc(unsigned, { qty: Number.NaN })).toThrow(/not a finite number/);
  });

  it("throws RecordError with the field name for callers to map", () => {
    try {
      enc(money, { amount: "9999999" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).field).toBe("amount");
    }
  });

  it("supports every sign convention", () => {
    const make = (sign: FixedField["sign"]): FixedField[] => [
      { name: "v", length: 5, type: "numeric", decimals: 1, sign },
    ];
    expect(enc(make("trailing-separate"), { v: "-12.5" })).toBe("0125-");
    expect(dec(make("trailing-separate"), "0125-")).toEqual({ v: "-12.5" });
    expect(enc(make("trailing-overpunch"), { v: "-12.5" })).toBe("0012N");
    expect(enc(make("trailing-overpunch"), { v: "12.5" })).toBe("0012E");
    expect(enc(make("trailing-overpunch"), { v: "-12.0" })).toBe("0012}");
    expect(dec(make("trailing-overpunch"), "0012N")).toEqual({ v: "-12.5" });
    expect(dec(make("trailing-overpunch"), "0012{")).toEqual({ v: "12.0" });
    expect(dec(make("trailing-overpunch"), "00125")).toEqual({ v: "12.5" });
    expect(enc(make("leading-overpunch"), { v: "-1234.5" })).toBe("J2345");
    expect(dec(make("leading-overpunch"), "J2345")).toEqual({ v: "-1234.5" });
    expect(enc(make("none"), { v: "1234.5" })).toBe("12345");
  });

  it("refuses malformed numeric text in a reply, naming the field", () => {
    expect(() => dec(money, "*00123450")).toThrow(/field "amount": expected a "\+" or "-" sign/);
    expect(() => dec(money, "+0012 450")).toThrow(/field "amount": expected digits/);
    const op: FixedField[] = [{ name: "v", length: 3, type: "numeric", sign: "trailing-overpunch" }];
    expect(() => dec(op, "12#")).toThrow(/field "v": invalid zoned sign "#"/);
  });

  it("space-padded numerics read and write", () => {
    const sp: FixedField[] = [{ name: "n", length: 6, type: "numeric", pad: " ", sign: "leading-separate" }];
    expect(enc(sp, { n: -42 })).toBe("-   42");
    expect(dec(sp, "-   42")).toEqual({ n: "-42" });
  });

  it("gives JSON integers when asked, within exact range", () => {
    const qty: FixedField[] = [{ name: "qty", length: 5, type: "numeric", jsonType: "integer" }];
    expect(dec(qty, "00042")).toEqual({ qty: 42 });
    expect(enc(qty, { qty: 42 })).toBe("00042");
  });

  it("writes zeros for an absent optional numeric", () => {
    expect(enc(money, {})).toBe("+00000000");
  });
});

describe("fixed-width records: layout and length", () => {
  const rec: FixedField[] = [
    { name: "id", length: 4, type: "alphanumeric" },
    { name: "sep", length: 2, type: "filler" },
    { name: "qty", length: 3, type: "numeric" },
  ];

  it("round-trips a whole record, fillers included", () => {
    const text = enc(rec, { id: "A1", qty: "7" });
    expect(text).toBe("A1    007");
    expect(dec(rec, text)).toEqual({ id: "A1", qty: "7" });
  });

  it("refuses a record of the wrong length", () => {
    expect(() => dec(rec, "A1    0070")).toThrow(/record is 10 bytes, the layout defines 9/);
    expect(() => dec(rec, "A1")).toThrow(/record is 2 bytes/);
  });

  it("refuses bytes outside ASCII in an ascii record and a split character in utf8", () => {
    expect(() => decodeRecord(layout(rec, "ascii"), Buffer.from("A\xe9    007", "latin1"))).toThrow(
      /field "id": contains non-ASCII/,
    );
    const u = layout(
      [
        { name: "a", length: 1, type: "alphanumeric" },
        { name: "b", length: 1, type: "alphanumeric" },
      ],
      "utf8",
    );
    expect(() => decodeRecord(u, Buffer.from("é", "utf8"))).toThrow(/field "a": is not valid UTF-8/);
  });

  it("reports layout problems with the field index and key", () => {
    const { problems } = compileLayout(
      [
        { name: "a", length: 1, type: "numeric", sign: "leading-separate" },
        { name: "a", length: 4, type: "numeric", decimals: 5 },
        { name: "c", length: 3, type: "alphanumeric", decimals: 1 },
        { name: "d", length: 20, type: "numeric", jsonType: "integer" },
        { name: "e", length: 3, type: "numeric", default: "1000" },
        { name: "f", length: 3, type: "numeric", pad: "0", justify: "left" },
        { name: "g", length: 3, type: "numeric", pad: " ", sign: "trailing-overpunch" },
      ],
      "ascii",
    );
    expect(problems).toEqual([
      { index: 0, key: "length", message: "a separate sign needs a length of at least 2" },
      { index: 1, key: "name", message: 'duplicate field name "a"' },
      { index: 1, key: "decimals", message: "more decimals than the 4 digits" },
      { index: 2, key: "decimals", message: "decimals applies to numeric fields only" },
      {
        index: 3,
        key: "jsonType",
        message: expect.stringMatching(/integer needs decimals 0 and at most 15 digits/),
      },
      { index: 5, key: "justify", message: "left-justified zero padding would change the value" },
      { index: 6, key: "pad", message: "an overpunched sign needs zero padding" },
      {
        index: 4,
        key: "default",
        message: expect.stringMatching(/field "e": value 1000 does not fit 3 integer digits/),
      },
    ]);
  });
});
