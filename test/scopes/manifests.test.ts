import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, formatProblem } from "../../src/config/load-file.js";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import { manifestDir, TOOLS } from "./fixtures.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function problems(manifests: Record<string, unknown>): string[] {
  const dir = manifestDir(manifests);
  dirs.push(dir);
  try {
    loadScopeManifests(dir, TOOLS);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) =>
      formatProblem({ ...p, file: p.file.replace(/^.*\//, "") }),
    );
  }
  throw new Error("manifests loaded without error");
}

const base = { name: "s", description: "d" };

describe("scope manifest loading", () => {
  it("names file, entry and line for a tool no connector provides", () => {
    const text = JSON.stringify(
      { ...base, tools: ["customers__find_customer", "customers__find_customr"] },
      null,
      2,
    );
    expect(problems({ "s.json": text })).toEqual([
      's.json:6:5 at tools[1]: no connector provides tool "customers__find_customr" (connector "customers" provides: customers__find_customer, customers__search_customers, customers__query, customers__update_order_status)',
    ]);
  });

  it.each([
    [
      { tools: ["crm__*"] },
      'at tools[0]: pattern "crm__*" matches no tool (no connector "crm"; connectors: customers, orders)',
    ],
    [
      { tools: [{ tool: "orders__create_order", readOnly: true }] },
      'at tools[0].tool: tool "orders__create_order" is not read-only',
    ],
    [{ deny: ["orders__nope"] }, 'at deny[0]: no connector provides tool "orders__nope"'],
    [
      { tools: ["orders__get_order", "orders__get_order"] },
      'at tools[1]: tool "orders__get_order" is already granted at tools[0]',
    ],
    [
      { tools: [{ tool: "orders__*", constraints: { limit: { maximum: 5 } } }] },
      'at tools[0].constraints: constraints need an exact tool name, not the pattern "orders__*"',
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { lmit: { maximum: 5 } } }] },
      'at tools[0].constraints.lmit: tool "orders__list_orders" has no argument "lmit" (its arguments: customerId, status, limit, tags)',
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { status: { enum: ["open", "lost"] } } }] },
      'at tools[0].constraints.status.enum: "lost" is not one of the tool\'s values ("open", "shipped", "cancelled")',
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { status: { maximum: 5 } } }] },
      "at tools[0].constraints.status.maximum: minimum/maximum apply to number arguments",
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { limit: { minimum: 9, maximum: 5 } } }] },
      "minimum 9 is greater than maximum 5",
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { status: { pattern: "(" } } }] },
      "at tools[0].constraints.status.pattern: invalid regular expression",
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { status: { maxItems: 2 } } }] },
      "maxItems applies to array arguments",
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { tags: { money: { max: "1.00" } } } }] },
      "money applies to decimal-string or number arguments",
    ],
    [
      { tools: [{ tool: "orders__list_orders", constraints: { limit: { money: { max: "1.5e3" } } } }] },
      'at tools[0].constraints.limit.money.max: a decimal string such as "200.00"',
    ],
    [
      {
        tools: [
          {
            tool: "orders__list_orders",
            bind: { customerId: "customer_id" },
            constraints: { customerId: { maxLength: 3 } },
          },
        ],
      },
      'at tools[0].bind.customerId: argument "customerId" is both bound to a claim and constrained',
    ],
    [
      { tools: [{ tool: "orders__list_orders", bind: { customer: "customer_id" } }] },
      'at tools[0].bind.customer: tool "orders__list_orders" has no argument "customer"',
    ],
    [
      { tools: [{ tool: "orders__list_orders", approval: { when: "limit >" } }] },
      'at tools[0].approval.when: invalid approval condition: expected a number, a quoted string, true or false after "limit >"',
    ],
    [
      { tools: [{ tool: "orders__list_orders", approval: { when: "amount > 5" } }] },
      'condition reads "amount", but tool "orders__list_orders" has no such argument',
    ],
    [
      { tools: [{ tool: "orders__list_orders", approval: { when: 'status > "x"' } }] },
      "> compares numbers only; use == or != with strings",
    ],
    [
      {
        tools: [
          { tool: "orders__list_orders", bind: { customerId: "c" }, approval: { when: 'customerId == "x"' } },
        ],
      },
      'condition reads "customerId", which is bound to a claim',
    ],
    [
      { tools: [{ tool: "orders__list_orders", rateLimit: { limit: 0, windowSec: 1 } }] },
      "at tools[0].rateLimit.limit",
    ],
    [{ tools: [{ tool: "orders__list_orders", unknown: 1 }] }, "tools[0]"],
    [{ name: "has space" }, "at name: scope names use letters"],
  ] as [Record<string, unknown>, string][])("refuses %j", (patch, expected) => {
    const found = problems({
      "s.json": { ...base, ...patch },
      "ok.json": { name: "ok", description: "fine", tools: ["orders__*"] },
    });
    expect(found.join("\n")).toContain(expected);
    expect(found.every((p) => p.startsWith("s.json"))).toBe(true);
  });

  it("refuses two manifests with one scope name, naming both files", () => {
    const found = problems({ "a.json": { ...base, tools: [] }, "b.json": { ...base, tools: [] } });
    expect(found).toEqual([
      expect.stringMatching(/^b\.json:\d+:\d+ at name: scope "s" is already defined in .*a\.json/),
    ]);
  });

  it("reports problems in every file at once, and malformed JSON with its line", () => {
    const found = problems({
      "a.json": '{\n  "name": "a",\n  oops\n}',
      "b.json": { ...base, tools: ["x__y"] },
    });
    expect(found[0]).toMatch(/^a\.json:3:\d+: malformed JSON/);
    expect(found.at(-1)).toMatch(/^b\.json:\d+:\d+ at tools\[0\]: no connector provides tool "x__y"/);
  });

  it("loads valid manifests, hashes them, and accepts money on an integer argument", () => {
    const dir = manifestDir({
      "s.json": {
        ...base,
        tools: [{ tool: "orders__list_orders", constraints: { limit: { money: { max: "10" } } } }],
        rateLimit: { limit: 5, windowSec: 1 },
      },
    });
    dirs.push(dir);
    const set = loadScopeManifests(dir, TOOLS);
    expect([...set.scopes.keys()]).toEqual(["s"]);
    expect(set.scopes.get("s")!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(set.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a missing scopes directory", () => {
    expect(() => loadScopeManifests("/nonexistent/scopes-dir", TOOLS)).toThrow(/scopes directory not found/);
  });
});
