import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Identity } from "../../src/core/index.js";
import { ApprovalStore } from "../../src/scopes/approvals.js";
import { runApprovalsCommand } from "../../src/scopes/cli.js";
import { createApprovalsHandler } from "../../src/scopes/http.js";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import { createCallPolicy } from "../../src/scopes/policy.js";
import { testLogger } from "../helpers/logger.js";
import { identity, manifestDir, TOOLS, toolNamed } from "./fixtures.js";
import { APPROVER, ORDER_OPS } from "./manifests-fixture.js";
import { AUDIENCE, ISSUER, JwksServer, makeKey, sign, type TestKey } from "./jwt-fixtures.js";

const tool = toolNamed("customers__update_order_status");
const agent = identity("agent-7", ["order-ops"]);

async function park(store: ApprovalStore, amount: string): Promise<string> {
  const policy = createCallPolicy(loadScopeManifests(scopesDir, TOOLS), {
    logger: testLogger,
    approvals: store,
  });
  const args = policy.constrain(agent, tool, { orderId: "O-9", status: "refunded", amount });
  try {
    await policy.approve(agent, tool, args, "call-1");
  } catch (err) {
    return (err as { details: { approvalId: string } }).details.approvalId;
  }
  throw new Error("no approval requested");
}

const scopesDir = manifestDir({ "order-ops.json": ORDER_OPS, "approver.json": APPROVER });
afterAll(() => rmSync(scopesDir, { recursive: true, force: true }));

describe("/admin/approvals handlers over real HTTP", () => {
  const root = mkdtempSync(join(tmpdir(), "portcullis-approvals-http-"));
  const store = ApprovalStore.open({
    file: join(root, "approvals.db"),
    ttlMs: 60_000,
    approverScope: "approver",
    logger: testLogger,
  });
  const handler = createApprovalsHandler(store);
  let server: Server;
  let base = "";
  // The server authenticates before calling the handler; here the caller is named by a header.
  const callers: Record<string, Identity> = {
    alice: identity("alice", ["approver"]),
    "agent-7": identity("agent-7", ["approver", "order-ops"]),
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        const url = new URL(req.url ?? "/", "http://localhost");
        const who = callers[String(req.headers["x-test-caller"])]!;
        void handler(req, res, { identity: who, url, body: text ? JSON.parse(text) : undefined });
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/approvals`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    store.close();
    rmSync(root, { recursive: true, force: true });
  });

  const req = (path: string, caller: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { "x-test-caller": caller, "content-type": "application/json" },
    });

  it("lists, shows, refuses self-approval, approves, and validates input", async () => {
    const id = await park(store, "500.00");
    const list = await req("?status=pending", "alice");
    expect(list.status).toBe(200);
    const body = (await list.json()) as { approvals: { id: string; arguments: unknown }[] };
    expect(body.approvals.map((a) => a.id)).toEqual([id]);
    expect(body.approvals[0]!.arguments).toEqual({ amount: "500.00", orderId: "O-9", status: "refunded" });
    expect((await req(`/${id}`, "alice")).status).toBe(200);
    expect((await req("/apr_missing", "alice")).status).toBe(404);

    const self = await req(`/${id}/approve`, "agent-7", { method: "POST", body: "{}" });
    expect(self.status).toBe(403);
    expect(((await self.json()) as { message: string }).message).toMatch(/^separation of duties/);

    expect((await req(`/${id}/approve`, "alice", { method: "POST", body: '{"nope":1}' })).status).toBe(400);
    expect((await req(`/${id}/approve`, "alice", { method: "GET" })).status).toBe(405);
    expect((await req("?status=weird", "alice")).status).toBe(400);

    const ok = await req(`/${id}/approve`, "alice", { method: "POST", body: '{"note":"fine"}' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      id,
      status: "approved",
      decidedBy: { subject: "alice" },
      note: "fine",
    });
    expect((await req(`/${id}/deny`, "alice", { method: "POST" })).status).toBe(400);
  });
});

describe("portcullis approvals CLI", () => {
  const root = mkdtempSync(join(tmpdir(), "portcullis-approvals-cli-"));
  const jwks = new JwksServer();
  let key: TestKey;
  let configPath = "";

  beforeAll(async () => {
    key = await makeKey("ES256", "cli-1");
    jwks.keys = [key.publicJwk];
    await jwks.start();
    mkdirSync(join(root, "audit"));
    configPath = join(root, "mcp.config.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        transports: { http: { publicUrl: AUDIENCE } },
        identity: {
          jwt: { issuer: ISSUER, jwksUrl: jwks.url },
          local: { subject: "agent-7", scopes: ["approver"] },
        },
        paths: { scopes: scopesDir, audit: "audit" },
      }),
    );
  });
  afterAll(async () => {
    await jwks.close();
    rmSync(root, { recursive: true, force: true });
  });

  function io() {
    const out: string[] = [];
    const err: string[] = [];
    const sink = (to: string[]) => new Writable({ write: (c, _e, cb) => (to.push(String(c)), cb()) });
    return { env: { configPath, stdout: sink(out), stderr: sink(err), env: {} }, out, err };
  }

  it("lists pending approvals, refuses the requester, and approves with a verified token", async () => {
    const store = ApprovalStore.open({
      file: join(root, "audit", "approvals.db"),
      ttlMs: 60_000,
      approverScope: "approver",
      logger: testLogger,
    });
    const id = await park(store, "300.00");
    store.close();

    let run = io();
    expect(await runApprovalsCommand(["list"], run.env)).toBe(0);
    expect(run.out.join("")).toMatch(
      new RegExp(
        `^${id}  pending .* agent-7  customers__update_order_status .*rule: amount > 200.00\\n1 pending approval\\n$`,
      ),
    );

    // identity.local is the requester here: separation of duties refuses it.
    run = io();
    expect(await runApprovalsCommand(["approve", id], run.env)).toBe(1);
    expect(run.err.join("")).toMatch(/^separation of duties: agent-7 requested this call/);

    run = io();
    const notApprover = await sign(key, { subject: "bob", payload: { scope: "order-ops" } });
    expect(await runApprovalsCommand(["approve", id, "--token", notApprover], run.env)).toBe(1);
    expect(run.err.join("")).toBe('deciding approvals needs the "approver" scope\n');

    run = io();
    const token = await sign(key, { subject: "carol", payload: { scope: "approver" } });
    expect(await runApprovalsCommand(["approve", id, "--token", token, "--note", "ticket 7"], run.env)).toBe(
      0,
    );
    expect(run.out.join("")).toMatch(
      new RegExp(`^${id} approved by carol; the requester may now repeat the call once`),
    );

    run = io();
    expect(await runApprovalsCommand(["show", id, "--json"], run.env)).toBe(0);
    expect(JSON.parse(run.out.join(""))).toMatchObject({
      id,
      status: "approved",
      note: "ticket 7",
      decidedBy: { subject: "carol" },
    });

    run = io();
    expect(await runApprovalsCommand(["frobnicate"], run.env)).toBe(2);
    expect(run.err.join("")).toMatch(/^Usage:/);
  });
});
