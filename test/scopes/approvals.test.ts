import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { AuditEvent } from "../../src/core/index.js";
import { ApprovalStore } from "../../src/scopes/approvals.js";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import { createCallPolicy, type ScopePolicy } from "../../src/scopes/policy.js";
import { testLogger } from "../helpers/logger.js";
import { identity, manifestDir, TOOLS, toolNamed } from "./fixtures.js";
import { APPROVER, ORDER_OPS, REFUNDS_LITE } from "./manifests-fixture.js";
import { rejection } from "../helpers/errors.js";

const dir = manifestDir({
  "order-ops.json": ORDER_OPS,
  "refunds-lite.json": REFUNDS_LITE,
  "approver.json": APPROVER,
});
const scopes = loadScopeManifests(dir, TOOLS);
const tool = toolNamed("customers__update_order_status");
const agent = identity("agent-7", ["order-ops"]);
const approver = identity("alice", ["approver"]);
const big = { orderId: "O-1", status: "refunded", amount: "250.00" };

let clock = Date.parse("2030-01-01T00:00:00Z");
const open: ApprovalStore[] = [];
const audit: AuditEvent[] = [];

function start(file = join(dir, "approvals.db")): { store: ApprovalStore; policy: ScopePolicy } {
  const store = ApprovalStore.open({
    file,
    ttlMs: 10 * 60_000,
    approverScope: "approver",
    logger: testLogger,
    now: () => clock,
    audit: { append: async (e) => void audit.push(e), close: async () => undefined },
  });
  open.push(store);
  return { store, policy: createCallPolicy(scopes, { logger: testLogger, approvals: store }) };
}

/** One pass through the policy stages the gateway runs before invoking the connector. */
async function call(policy: ScopePolicy, args: Record<string, unknown>, who = agent): Promise<"ran"> {
  const constrained = policy.constrain(who, tool, args);
  await policy.admit(who, tool, constrained);
  await policy.approve(who, tool, constrained, `call-${Math.random().toString(36).slice(2)}`);
  return "ran";
}

afterEach(() => {
  while (open.length > 0) open.pop()!.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("human approval", () => {
  it("lets calls under the rule through without a request", async () => {
    const { policy, store } = start(join(dir, "small.db"));
    await expect(call(policy, { ...big, amount: "200.00" })).resolves.toBe("ran");
    expect(store.list()).toHaveLength(0);
  });

  it("parks a call, binds the approval to its exact arguments, and runs it exactly once after approval", async () => {
    const { policy, store } = start(join(dir, "once.db"));
    const first = await rejection(call(policy, big));
    expect(first.code).toBe("APPROVAL_REQUIRED");
    const id = first.details?.approvalId as string;
    expect(id).toMatch(/^apr_/);
    expect(first.message).toContain(id);
    expect(first.message).toMatch(/refunds above 200\.00 need a second pair of eyes; rule: amount > 200\.00/);
    // Repeating while pending returns the same request, not a new one.
    expect((await rejection(call(policy, big))).details?.approvalId).toBe(id);
    expect(store.list({ status: "pending" }).map((r) => r.id)).toEqual([id]);

    const record = await store.decide(id, "approve", approver, "ok per ticket 42");
    expect(record).toMatchObject({
      status: "approved",
      decidedBy: { subject: "alice" },
      note: "ok per ticket 42",
    });

    // Changed arguments need their own approval; the approved call is still unused.
    const changed = await rejection(call(policy, { ...big, amount: "250.01" }));
    expect(changed.code).toBe("APPROVAL_REQUIRED");
    expect(changed.details?.approvalId).not.toBe(id);

    await expect(call(policy, big)).resolves.toBe("ran");
    expect(store.get(id)?.status).toBe("consumed");
    const again = await rejection(call(policy, big));
    expect(again.code).toBe("APPROVAL_REQUIRED");
    expect(again.details?.approvalId).not.toBe(id);
    expect(audit.map((e) => e.type)).toEqual(
      expect.arrayContaining(["approval.requested", "approval.approved"]),
    );
  });

  it("binds the approval to the requester: another identity's identical call is not approved by it", async () => {
    const { policy, store } = start(join(dir, "who.db"));
    const id = (await rejection(call(policy, big))).details?.approvalId as string;
    await store.decide(id, "approve", approver);
    const other = identity("agent-8", ["order-ops"]);
    expect((await rejection(call(policy, big, other))).code).toBe("APPROVAL_REQUIRED");
    await expect(call(policy, big)).resolves.toBe("ran");
  });

  it("refuses the requester as its own approver, and approvers without the approver scope", async () => {
    const { policy, store } = start(join(dir, "sod.db"));
    const id = (await rejection(call(policy, big))).details?.approvalId as string;
    const self = identity("agent-7", ["order-ops", "approver"]);
    const e = await rejection(store.decide(id, "approve", self));
    expect(e.code).toBe("FORBIDDEN");
    expect(e.message).toMatch(/^separation of duties: agent-7 requested this call and cannot decide it/);
    const noScope = await rejection(store.decide(id, "approve", identity("bob", ["order-ops"])));
    expect(noScope.code).toBe("FORBIDDEN");
    expect(noScope.message).toBe('deciding approvals needs the "approver" scope');
    expect(store.get(id)?.status).toBe("pending");
    expect((await rejection(call(policy, big))).code).toBe("APPROVAL_REQUIRED");
  });

  it("keeps a denied call refused for the TTL", async () => {
    const { policy, store } = start(join(dir, "deny.db"));
    const id = (await rejection(call(policy, big))).details?.approvalId as string;
    await store.decide(id, "deny", approver, "not a valid refund");
    for (let i = 0; i < 2; i++) {
      const e = await rejection(call(policy, big));
      expect(e.code).toBe("DENIED_APPROVAL");
      expect(e.message).toMatch(new RegExp(`denied by an approver \\(approval ${id}: not a valid refund\\)`));
    }
    const twice = await rejection(store.decide(id, "approve", approver));
    expect(twice.message).toMatch(/is already denied/);
  });

  it("expires pending requests and unused approvals", async () => {
    const { policy, store } = start(join(dir, "expire.db"));
    const id = (await rejection(call(policy, big))).details?.approvalId as string;
    clock += 11 * 60_000;
    const late = await rejection(store.decide(id, "approve", approver));
    expect(late.message).toMatch(/expired at .* and can no longer be decided/);
    const e = await rejection(call(policy, big));
    expect(e.code).toBe("DENIED_APPROVAL");
    expect(e.message).toMatch(/expired at .* call again to request a new approval/);
    const next = await rejection(call(policy, big));
    expect(next.code).toBe("APPROVAL_REQUIRED");
    const id2 = next.details?.approvalId as string;
    expect(id2).not.toBe(id);
    await store.decide(id2, "approve", approver);
    clock += 11 * 60_000;
    expect((await rejection(call(policy, big))).details?.status).toBe("expired");
    expect(store.get(id2)?.status).toBe("expired");
  });

  it("survives a restart between request, decision and the repeated call", async () => {
    const file = join(dir, "restart.db");
    let run = start(file);
    const id = (await rejection(call(run.policy, big))).details?.approvalId as string;
    run.store.close();
    open.length = 0;
    run = start(file);
    expect(run.store.get(id)?.status).toBe("pending");
    await run.store.decide(id, "approve", approver);
    run.store.close();
    open.length = 0;
    run = start(file);
    await expect(call(run.policy, big)).resolves.toBe("ran");
    expect((await rejection(call(run.policy, big))).code).toBe("APPROVAL_REQUIRED");
  });

  it("consumes an approval once even when two identical calls race", async () => {
    const { policy, store } = start(join(dir, "race.db"));
    const id = (await rejection(call(policy, big))).details?.approvalId as string;
    await store.decide(id, "approve", approver);
    const results = await Promise.allSettled([call(policy, big), call(policy, big)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("prefers a granting scope that needs no approval", async () => {
    const { policy } = start(join(dir, "union.db"));
    const both = identity("agent-9", ["order-ops", "refunds-lite"]);
    await expect(call(policy, { ...big, amount: "40.00" }, both)).resolves.toBe("ran");
    expect((await rejection(call(policy, big, both))).code).toBe("APPROVAL_REQUIRED");
  });

  it("caps pending requests per identity", async () => {
    const store = ApprovalStore.open({
      file: join(dir, "cap.db"),
      ttlMs: 60_000,
      approverScope: "approver",
      maxPendingPerIdentity: 2,
      logger: testLogger,
    });
    open.push(store);
    const policy = createCallPolicy(scopes, { logger: testLogger, approvals: store });
    for (const amount of ["201.00", "202.00"])
      expect((await rejection(call(policy, { ...big, amount }))).code).toBe("APPROVAL_REQUIRED");
    const e = await rejection(call(policy, { ...big, amount: "203.00" }));
    expect(e.code).toBe("DENIED_RATE_LIMIT");
    expect(e.message).toMatch(/you have 2 approval requests pending \(at most 2\)/);
  });
});
