import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayError } from "../../src/core/index.js";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import {
  createCallPolicy,
  unknownToolError,
  type IgnoredArgumentsEvent,
  type ScopePolicy,
} from "../../src/scopes/policy.js";
import { ApprovalStore } from "../../src/scopes/approvals.js";
import { testLogger } from "../helpers/logger.js";
import { identity, manifestDir, TOOLS, toolNamed } from "./fixtures.js";
import { ANALYST, APPROVER, ORDER_OPS, REFUNDS_LITE, SUPPORT } from "./manifests-fixture.js";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { rejection } from "../helpers/errors.js";

const visibleNames = (p: ScopePolicy, scopes: string[], claims = {}) =>
  p.visibleTools(identity("someone", scopes, claims), TOOLS).map((t) => t.name);

function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error("not refused");
}

describe("call policy", () => {
  const dir = manifestDir({
    "support-agent.json": SUPPORT,
    "order-ops.json": ORDER_OPS,
    "refunds-lite.json": REFUNDS_LITE,
    "analyst.json": ANALYST,
    "approver.json": APPROVER,
  });
  const ignored: IgnoredArgumentsEvent[] = [];
  let approvals: ApprovalStore;
  let policy: ScopePolicy;

  beforeAll(() => {
    approvals = ApprovalStore.open({
      file: join(dir, "state", "approvals.db"),
      ttlMs: 60_000,
      approverScope: "approver",
      logger: testLogger,
    });
    policy = createCallPolicy(loadScopeManifests(dir, TOOLS), {
      logger: testLogger,
      approvals,
      onIgnoredArguments: (e) => ignored.push(e),
    });
  });
  afterAll(() => {
    approvals.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("visibility", () => {
    it("denies by default: no scope, or only unknown scope names, sees nothing", () => {
      expect(visibleNames(policy, [])).toEqual([]);
      expect(visibleNames(policy, ["no-such-scope", "admin"])).toEqual([]);
    });

    it("gives two identities different tool lists", () => {
      expect(visibleNames(policy, ["support-agent"])).toEqual([
        "customers__find_customer",
        "customers__search_customers",
        "orders__list_orders",
        "orders__get_order",
      ]);
      expect(visibleNames(policy, ["order-ops"])).toEqual([
        "customers__find_customer",
        "customers__search_customers",
        "customers__update_order_status",
      ]);
    });

    it("combines scopes by union, and an explicit deny in any held scope wins", () => {
      expect(visibleNames(policy, ["analyst"])).toEqual(["customers__query"]);
      const both = visibleNames(policy, ["analyst", "order-ops", "support-agent"]);
      expect(both).not.toContain("customers__query");
      expect(both).toContain("orders__list_orders");
      expect(both).toContain("customers__update_order_status");
    });

    it("does not grant a non-read-only tool through a readOnly pattern", () => {
      expect(policy.canSee(identity("a", ["support-agent"]), toolNamed("orders__create_order"))).toBe(false);
    });

    it("refuses a hidden tool exactly like a tool that does not exist", () => {
      const agent = identity("a", ["support-agent"]);
      const hidden = refusal(() =>
        policy.constrain(agent, toolNamed("customers__query"), { sql: "select 1" }),
      );
      const ghost = { ...toolNamed("customers__query"), name: "customers__nope" };
      const missing = refusal(() => policy.constrain(agent, ghost, {}));
      expect(hidden.code).toBe("TOOL_NOT_FOUND");
      expect(hidden.message).toBe(unknownToolError("customers__query").message);
      expect(missing.message).toBe(unknownToolError("customers__nope").message);
      expect(hidden.message.replace("query", "X")).toBe(missing.message.replace("nope", "X"));
      expect(policy.manifestHash(agent, toolNamed("customers__query"))).toBeUndefined();
    });

    it("records which manifests granted a tool", () => {
      const a = policy.manifestHash(identity("a", ["order-ops"]), toolNamed("customers__find_customer"));
      const b = policy.manifestHash(identity("a", ["support-agent"]), toolNamed("customers__find_customer"));
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(b).toMatch(/^[0-9a-f]{64}$/);
      expect(a).not.toBe(b);
    });
  });

  describe("visible schemas", () => {
    it("narrows enums and bounds and removes claim-bound arguments", () => {
      const s = policy.visibleSchema(
        identity("a", ["support-agent"], { customer_id: "C-7" }),
        toolNamed("orders__list_orders"),
      );
      expect(Object.keys(s.properties ?? {})).toEqual(["status", "limit", "tags"]);
      expect(s.properties?.status).toEqual({ type: "string", enum: ["open", "shipped"] });
      expect(s.properties?.tags).toMatchObject({ maxItems: 3 });
      expect(s.required).toEqual(["status"]);
      // The agent may still send customerId (it is ignored), so strict schemas must not refuse it.
      expect(s.patternProperties).toEqual({ "^customerId$": {} });
      const search = policy.visibleSchema(
        identity("a", ["support-agent"]),
        toolNamed("customers__search_customers"),
      );
      expect(search.properties?.limit).toEqual({ type: "integer", minimum: 1, maximum: 50 });
      expect(search.properties?.prefix).toEqual({ type: "string", maxLength: 20, pattern: "^[A-Za-z]" });
    });

    it("shows two identities different schemas for the same tool", () => {
      const tool = toolNamed("customers__update_order_status");
      const ops = policy.visibleSchema(identity("a", ["order-ops"]), tool);
      const lite = policy.visibleSchema(identity("b", ["refunds-lite"]), tool);
      expect(ops.properties?.status).toMatchObject({ enum: ["shipped", "cancelled", "refunded"] });
      expect(lite.properties?.status).toMatchObject({ enum: ["refunded"] });
      expect(String(ops.properties?.amount?.description)).toContain("at most 1000.00");
      expect(lite.required).toEqual(["orderId", "status", "amount"]);
      expect(ops.required).toEqual(["orderId", "status"]);
      const union = policy.visibleSchema(identity("c", ["order-ops", "refunds-lite"]), tool);
      expect(union.properties?.status).toMatchObject({ enum: ["shipped", "cancelled", "refunded"] });
      expect(union.required).toEqual(["orderId", "status"]);
    });

    it("returns the tool's own schema when nothing narrows it, and caches per scope set", () => {
      const tool = toolNamed("customers__find_customer");
      expect(policy.visibleSchema(identity("a", ["order-ops"]), tool)).toBe(tool.inputSchema);
      const t2 = toolNamed("orders__list_orders");
      expect(policy.visibleSchema(identity("a", ["support-agent"]), t2)).toBe(
        policy.visibleSchema(identity("b", ["support-agent", "unknown"]), t2),
      );
    });
  });

  describe("argument constraints", () => {
    const agent = identity("s", ["support-agent"], { customer_id: "C-7" });
    const list = toolNamed("orders__list_orders");
    const search = toolNamed("customers__search_customers");
    const cases: [string, ReturnType<typeof toolNamed>, Record<string, unknown>, RegExp][] = [
      ["enum subset", list, { status: "cancelled" }, /argument "status" must be one of "open", "shipped"/],
      [
        "constrained argument omitted",
        list,
        {},
        /argument "status" is required by your scope "support-agent"/,
      ],
      ["maxItems", list, { status: "open", tags: ["a", "b", "c", "d"] }, /must have at most 3 items/],
      ["maximum", search, { prefix: "Ab", limit: 51 }, /argument "limit" must be at most 50/],
      ["pattern", search, { prefix: "1abc" }, /must match the pattern "\^\[A-Za-z\]"/],
      ["maxLength (code points)", search, { prefix: "A" + "é".repeat(20) }, /must be at most 20 characters/],
      ["type under a constraint", search, { prefix: 42 }, /argument "prefix" must be a string/],
    ];
    it.each(cases)("refuses %s with DENIED_CONSTRAINT", (_n, tool, args, message) => {
      const e = refusal(() => policy.constrain(agent, tool, args));
      expect(e.code).toBe("DENIED_CONSTRAINT");
      expect(e.message).toMatch(message);
    });

    it("admits calls within the constraints", () => {
      expect(policy.constrain(agent, search, { prefix: "Ab", limit: 50 })).toEqual({
        prefix: "Ab",
        limit: 50,
      });
      expect(policy.constrain(agent, search, { prefix: "A" + "é".repeat(19) })).toMatchObject({
        prefix: "A" + "é".repeat(19),
      });
    });

    it("compares money as exact decimals", () => {
      const ops = identity("o", ["order-ops"]);
      const tool = toolNamed("customers__update_order_status");
      const base = { orderId: "O-1", status: "refunded" };
      expect(policy.constrain(ops, tool, { ...base, amount: "1000.00" })).toMatchObject({
        amount: "1000.00",
      });
      expect(policy.constrain(ops, tool, { ...base, amount: "1000" })).toMatchObject({ amount: "1000" });
      const over = refusal(() => policy.constrain(ops, tool, { ...base, amount: "1000.001" }));
      expect(over.message).toMatch(/at most 2 decimal places/);
      const cent = refusal(() => policy.constrain(ops, tool, { ...base, amount: "1000.01" }));
      expect(cent.message).toMatch(/argument "amount" must be at most 1000.00/);
      // 9007199254740993 is not representable as a JS number; as a string it must still be refused exactly.
      expect(refusal(() => policy.constrain(ops, tool, { ...base, amount: "9007199254740993" })).code).toBe(
        "DENIED_CONSTRAINT",
      );
      expect(refusal(() => policy.constrain(ops, tool, { ...base, amount: "-0.01" })).message).toMatch(
        /at least 0.00/,
      );
      expect(refusal(() => policy.constrain(ops, tool, { ...base, amount: "12,00" })).message).toMatch(
        /decimal amount/,
      );
    });

    it("combines grants by union and picks the grant that admits the call", () => {
      const both = identity("u", ["order-ops", "refunds-lite"]);
      const tool = toolNamed("customers__update_order_status");
      expect(policy.constrain(both, tool, { orderId: "O-1", status: "shipped" })).toMatchObject({
        status: "shipped",
      });
      const lite = identity("l", ["refunds-lite"]);
      const e = refusal(() =>
        policy.constrain(lite, tool, { orderId: "O-1", status: "refunded", amount: "50.01" }),
      );
      expect(e.message).toMatch(/must be at most 50.00 \(scope "refunds-lite"\)/);
    });
  });

  describe("claim-bound arguments", () => {
    const list = toolNamed("orders__list_orders");

    it("injects the claim's value, ignores the agent's value and reports it", () => {
      ignored.length = 0;
      const agent = identity("s", ["support-agent"], { customer_id: "C-7" });
      const out = policy.constrain(agent, list, { status: "open", customerId: "C-OTHER" });
      expect(out).toEqual({ status: "open", customerId: "C-7" });
      expect(ignored).toEqual([{ identity: agent, tool: "orders__list_orders", arguments: ["customerId"] }]);
      expect(policy.constrain(agent, list, { status: "open" })).toEqual({
        status: "open",
        customerId: "C-7",
      });
      expect(ignored).toHaveLength(1);
    });

    it("refuses the call when the token lacks the claim", () => {
      const e = refusal(() =>
        policy.constrain(identity("s", ["support-agent"]), list, { status: "open", customerId: "C-1" }),
      );
      expect(e.code).toBe("DENIED_CONSTRAINT");
      expect(e.message).toMatch(/your token has no usable "customer_id" claim/);
    });

    it("converts a numeric claim for a string argument, and refuses an object claim", () => {
      const n = identity("s", ["support-agent"], { customer_id: 77 });
      expect(policy.constrain(n, list, { status: "open" })).toMatchObject({ customerId: "77" });
      const o = identity("s", ["support-agent"], { customer_id: { id: 1 } });
      expect(refusal(() => policy.constrain(o, list, { status: "open" })).code).toBe("DENIED_CONSTRAINT");
    });
  });

  describe("rate limits (in memory)", () => {
    it("limits each identity per tool and says when to retry", async () => {
      const tool = toolNamed("orders__list_orders");
      const a = identity("rate-a", ["support-agent"], { customer_id: "C-1" });
      const b = identity("rate-b", ["support-agent"], { customer_id: "C-2" });
      for (let i = 0; i < 2; i++) await policy.admit(a, tool, policy.constrain(a, tool, { status: "open" }));
      const e = await rejection(policy.admit(a, tool, policy.constrain(a, tool, { status: "open" })));
      expect(e.code).toBe("DENIED_RATE_LIMIT");
      expect(e.message).toMatch(
        /^rate limit for tool orders__list_orders reached \(2 calls per 60s\); retry after \d+\.\ds/,
      );
      expect(e.details?.retryAfterMs).toBeGreaterThan(25_000);
      expect(e.details?.retryAfterMs).toBeLessThanOrEqual(30_000);
      await expect(
        policy.admit(b, tool, policy.constrain(b, tool, { status: "open" })),
      ).resolves.toBeUndefined();
      // Tools without a limit are unaffected.
      await expect(
        policy.admit(a, toolNamed("orders__get_order"), { orderId: "O-1" }),
      ).resolves.toBeUndefined();
    });

    it("limits each identity per scope across its tools", async () => {
      const tool = toolNamed("customers__query");
      const a = identity("rate-scope", ["analyst"]);
      for (let i = 0; i < 3; i++)
        await policy.admit(a, tool, policy.constrain(a, tool, { sql: `select ${i}` }));
      const e = await rejection(policy.admit(a, tool, { sql: "select 4" }));
      expect(e.code).toBe("DENIED_RATE_LIMIT");
      expect(e.message).toMatch(
        /^rate limit for scope "analyst" reached \(3 calls per 60s across its tools\)/,
      );
    });
  });

  it("refuses to start with approval rules but no approval store", () => {
    expect(() => createCallPolicy(loadScopeManifests(dir, TOOLS), { logger: testLogger })).toThrow(
      /order-ops\.json tools\[1\] has an approval rule, but no approval store is configured/,
    );
  });
});
