import { describe, expect, it } from "vitest";
import { parseCondition } from "../../src/scopes/condition.js";
import { compareDecimal, formatDecimal, parseDecimal } from "../../src/scopes/decimal.js";

describe("exact decimals", () => {
  it.each([
    ["200.00", "200", 0],
    ["200.001", "200.00", 1],
    ["0.30", "0.1", 1],
    ["-1.5", "-1.50", 0],
    ["1e3", "1000", 0],
    ["9007199254740993", "9007199254740992", 1],
    ["12345678901234567890.01", "12345678901234567890", 1],
  ])("%s vs %s", (a, b, expected) => {
    expect(compareDecimal(parseDecimal(a)!, parseDecimal(b)!)).toBe(expected);
  });

  it("reads JSON numbers by their shortest rendering, not their binary value", () => {
    expect(compareDecimal(parseDecimal(0.1)!, parseDecimal("0.1")!)).toBe(0);
    expect(compareDecimal(parseDecimal(0.1 + 0.2)!, parseDecimal("0.3")!)).toBe(1);
    expect(formatDecimal(parseDecimal("-0.05")!)).toBe("-0.05");
  });

  it.each(["", "abc", "1,5", "1.", ".5", "NaN", "1e999", "1".repeat(65), Infinity, null, {}])(
    "refuses %j",
    (v) => {
      expect(parseDecimal(v)).toBeUndefined();
    },
  );
});

describe("approval conditions", () => {
  it.each([
    ["amount > 200.00", { amount: "200.01" }, true],
    ["amount > 200.00", { amount: "200.00" }, false],
    ["amount > 200.00", { amount: 200.000001 }, true],
    ["amount >= 200", { amount: "200.00" }, true],
    ["amount > 200", {}, false],
    ["amount > 200", { amount: "lots" }, true],
    ["amount == 5", { amount: "lots" }, false],
    ['status == "cancelled" and amount > 50', { status: "cancelled", amount: "51" }, true],
    ['status == "cancelled" and amount > 50', { status: "shipped", amount: "51" }, false],
    ['status == "x" or amount < 0', { status: "y", amount: "-1" }, true],
    ['not (status == "x")', { status: "y" }, true],
    ['status != "x"', {}, true],
    ["payment.total > 10 && urgent == true", { payment: { total: "11" }, urgent: true }, true],
    ["a > 1 or b > 1 and c > 1", { a: "2", b: "0", c: "0" }, true],
  ])("%s with %j → %s", (src, args, expected) => {
    expect(parseCondition(src).test(args)).toBe(expected);
  });

  it.each([
    ["", "empty condition"],
    ["amount >", "expected a number"],
    ["amount ~ 5", 'unexpected character "~"'],
    ["(amount > 5", 'missing ")"'],
    ['name < "b"', "< compares numbers only"],
    ["amount > 5 extra", 'unexpected "extra"'],
    ['name == "x', "unterminated string"],
  ])("refuses %j", (src, message) => {
    expect(() => parseCondition(src)).toThrow(message);
  });
});
