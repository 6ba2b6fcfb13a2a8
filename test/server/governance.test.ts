import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  LATEST_PROTOCOL_VERSION,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/config/load.js";
import type { RunningHttpServer } from "../../src/server/http.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import { startHttp } from "../../src/server/serve-http.js";
import { cliCommand, createDeployment, type Deployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";
import {
  startIssuer,
  startRecordingServer,
  type RecordingServer,
  type TestIssuer,
} from "../helpers/upstreams.js";

const AUDIENCE = "https://gateway.test/mcp";

function itemsSpec(version: string) {
  return {
    openapi: "3.0.3",
    info: { title: "items", version },
    paths: {
      "/items": {
        get: {
          operationId: "listItems",
          summary: `List items (${version})`,
          parameters: [
            { name: "category", in: "query", schema: { type: "string", enum: ["a", "b", "c"] } },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 100 } },
          ],
          responses: {
            "200": { description: "ok", content: { "application/json": { schema: { type: "object" } } } },
          },
        },
      },
    },
  };
}

async function connect(
  url: URL,
  token?: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
  });
  const client = new Client({ name: "governance-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

async function allToolNames(client: Client): Promise<string[]> {
  const all: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    all.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

describe("identity, scopes and admin over real HTTP with real JWTs", () => {
  let deployment: Deployment;
  let issuer: TestIssuer;
  let upstream: RecordingServer;
  let runtime: Runtime;
  let http: RunningHttpServer;
  let readerToken: string;
  let writerToken: string;
  let adminToken: string;

  const adminFetch = (path: string, init: RequestInit = {}, token = adminToken) =>
    fetch(new URL(path, http.url), {
      ...init,
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
        ...(init.headers ?? {}),
      },
    });

  beforeAll(async () => {
    issuer = await startIssuer();
    upstream = await startRecordingServer(() => ({ json: { items: [{ id: 1 }] } }));
    deployment = createDeployment({
      config: {
        transports: { http: { port: 0, publicUrl: AUDIENCE } },
        identity: { jwt: { issuer: issuer.issuer, jwksUrl: issuer.jwksUrl, algorithms: ["ES256"] } },
      },
    });
    mkdirSync(join(deployment.dir, "connectors", "specs"));
    deployment.write("connectors/specs/items.json", itemsSpec("1"));
    deployment.write("connectors/api.json", {
      kind: "rest",
      name: "api",
      spec: "specs/items.json",
      baseUrl: upstream.url,
      pinTools: true,
    });
    deployment.write("scopes/reader.json", {
      name: "reader",
      description: "Reads items, narrowly.",
      tools: [
        "inv__get_item",
        {
          tool: "api__listItems",
          constraints: { limit: { maximum: 10, optional: true }, category: { enum: ["a"], optional: true } },
        },
      ],
    });
    deployment.write("scopes/writer.json", { name: "writer", description: "Everything.", tools: ["*"] });
    deployment.write("scopes/admin.json", { name: "admin", description: "Runs the gateway.", tools: [] });
    deployment.write("scopes/payer.json", {
      name: "payer",
      description: "Sets quantities; big ones need a human.",
      tools: [
        { tool: "inv__set_qty", approval: { when: "qty > 100", reason: "large stock change" } },
        "inv__get_item",
      ],
    });
    deployment.write("scopes/approver.json", {
      name: "approver",
      description: "Approves parked calls.",
      tools: [],
    });
    runtime = await startRuntime(loadGatewayConfig(deployment.configPath), testLogger);
    runtime.watch(100);
    http = await startHttp(runtime, testLogger, { port: 0 });
    const base = { aud: AUDIENCE };
    readerToken = await issuer.sign({ ...base, sub: "alice", scope: "reader" });
    writerToken = await issuer.sign({ ...base, sub: "bob", scope: "writer" });
    adminToken = await issuer.sign({ ...base, sub: "carol", scope: "admin writer" });
  });

  afterAll(async () => {
    await http?.close();
    await runtime?.close();
    await upstream?.close();
    await issuer?.close();
    deployment?.cleanup();
  });

  it("answers a request without a token with 401 and the resource metadata URL", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(
      'Bearer resource_metadata="https://gateway.test/.well-known/oauth-protected-resource/mcp"',
    );
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      "missing bearer token",
    );
  });

  it("refuses an expired token with 401 invalid_token, without echoing it", async () => {
    const expired = await issuer.sign(
      { aud: AUDIENCE, sub: "alice", scope: "reader" },
      { expiresIn: "-10m" },
    );
    const res = await fetch(http.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${expired}` },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    const text = await res.text();
    expect(text).not.toContain(expired);
  });

  it("refuses a token for another audience", async () => {
    const other = await issuer.sign({ aud: "https://elsewhere/mcp", sub: "alice", scope: "reader" });
    const res = await fetch(http.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${other}` },
      body: "{}",
    });
    expect(res.status).toBe(401);
  });

  it("publishes RFC 9728 protected-resource metadata, also path-suffixed", async () => {
    for (const path of [
      "/.well-known/oauth-protected-resource",
      "/.well-known/oauth-protected-resource/mcp",
    ]) {
      const res = await fetch(new URL(path, http.url));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ resource: AUDIENCE, authorization_servers: [issuer.issuer] });
    }
  });

  it("shows each identity its own tools and narrowed schemas", async () => {
    const reader = await connect(http.url, readerToken);
    const writer = await connect(http.url, writerToken);
    const readerTools = (await reader.client.listTools()).tools;
    const writerNames: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await writer.client.listTools(cursor ? { cursor } : {});
      writerNames.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    expect(readerTools.map((t) => t.name)).toEqual(["api__listItems", "inv__get_item"]);
    expect(writerNames).toEqual(["api__listItems", "inv__get_item", "inv__query", "inv__set_qty"]);
    const schema = readerTools[0]!.inputSchema as {
      properties: Record<string, { enum?: unknown[]; maximum?: number }>;
    };
    expect(schema.properties.category!.enum).toEqual(["a"]);
    expect(schema.properties.limit!.maximum).toBe(10);
    await reader.client.close();
    await writer.client.close();
  });

  it("gives a hidden tool exactly the error of a tool that does not exist", async () => {
    const { client } = await connect(http.url, readerToken);
    const hidden = await client
      .callTool({ name: "inv__set_qty", arguments: { sku: "A-1", qty: 1 } })
      .catch((e: Error) => e);
    const missing = await client
      .callTool({ name: "inv__no_such", arguments: { sku: "A-1", qty: 1 } })
      .catch((e: Error) => e);
    expect((hidden as { code?: number }).code).toBe(-32602);
    expect((hidden as Error).message.replace("inv__set_qty", "X")).toBe(
      (missing as Error).message.replace("inv__no_such", "X"),
    );
    await client.close();
  });

  it("refuses a constraint violation before the upstream is touched", async () => {
    const { client } = await connect(http.url, readerToken);
    const before = upstream.requests.length;
    const refused = await client.callTool({ name: "api__listItems", arguments: { limit: 50 } });
    expect(refused.isError).toBe(true);
    expect((refused.content as { text: string }[])[0]!.text).toMatch(
      /^(DENIED_CONSTRAINT|INVALID_ARGUMENTS):/,
    );
    expect(upstream.requests.length).toBe(before);
    const allowed = await client.callTool({ name: "api__listItems", arguments: { limit: 5, category: "a" } });
    expect(allowed.isError).toBeFalsy();
    expect(upstream.requests.length).toBe(before + 1);
    expect(upstream.requests.at(-1)!.url).toBe("/items?category=a&limit=5");
    // The agent's own token never reaches the upstream.
    expect(upstream.requests.at(-1)!.headers.authorization).toBeUndefined();
    await client.close();
  });

  it("binds a session to the identity that opened it: another identity gets 404", async () => {
    const { client, transport } = await connect(http.url, readerToken);
    const res = await fetch(http.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${writerToken}`,
        "mcp-session-id": transport.sessionId!,
        "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" }),
    });
    expect(res.status).toBe(404);
    await client.close();
  });

  it("`portcullis tools --token` shows what an MCP client holding that token sees", async () => {
    const { command, args } = cliCommand(
      "tools",
      "--json",
      "--config",
      deployment.configPath,
      "--token",
      readerToken,
    );
    const { stdout } = await promisify(execFile)(command, args, { timeout: 60_000 });
    const listed = JSON.parse(stdout) as {
      identity: { subject: string };
      tools: { name: string; inputSchema: unknown }[];
    };
    const { client } = await connect(http.url, readerToken);
    const viaMcp = (await client.listTools()).tools;
    expect(listed.identity.subject).toBe("alice");
    expect(listed.tools.map((t) => [t.name, t.inputSchema])).toEqual(
      viaMcp.map((t) => [t.name, t.inputSchema]),
    );
    await client.close();
  });

  it("keeps /admin to the admin scope: 403 insufficient_scope otherwise", async () => {
    const denied = await adminFetch("/admin/connectors", {}, readerToken);
    expect(denied.status).toBe(403);
    expect(denied.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    const ok = await adminFetch("/admin/connectors");
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { connectors: { name: string; state: string }[] };
    expect(body.connectors.map((c) => `${c.name}:${c.state}`).sort()).toEqual(["api:up", "inv:up"]);
  });

  it("refuses an invalid connector through the API and changes nothing", async () => {
    const res = await adminFetch("/admin/connectors/broken", {
      method: "PUT",
      body: JSON.stringify({
        kind: "sql",
        engine: "sqlite",
        file: "../data/inventory.db",
        tools: [{ name: "x" }],
      }),
    });
    expect(res.status).toBe(422);
    expect(existsSync(join(deployment.dir, "connectors", "broken.json"))).toBe(false);
  });

  it("registers and removes a connector through the API; sessions get tools/list_changed", async () => {
    const { client } = await connect(http.url, writerToken);
    await client.listTools();
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    // A call in flight while the registry changes finishes on the old definitions.
    const inFlight = client.callTool({
      name: "inv__query",
      arguments: {
        sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT count(*) AS n FROM c",
      },
    });
    const put = await adminFetch("/admin/connectors/inv2", {
      method: "PUT",
      body: JSON.stringify({
        kind: "sql",
        engine: "sqlite",
        file: "../data/inventory.db",
        tools: [
          {
            name: "count",
            description: "Counts items.",
            statement: "SELECT count(*) AS n FROM items",
            readOnly: true,
          },
        ],
      }),
    });
    expect(put.status).toBe(200);
    expect(((await put.json()) as { ok: boolean }).ok).toBe(true);
    expect(existsSync(join(deployment.dir, "connectors", "inv2.json"))).toBe(true);
    const result = await inFlight;
    expect(result.isError).toBeFalsy();
    const names = () => allToolNames(client);
    expect(await names()).toContain("inv2__count");
    const call = await client.callTool({ name: "inv2__count", arguments: {} });
    expect((call.structuredContent as { rows: unknown[] }).rows).toEqual([{ n: 3 }]);
    await expect.poll(() => changed).toBeGreaterThanOrEqual(1);

    const del = await adminFetch("/admin/connectors/inv2", { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(await names()).not.toContain("inv2__count");
    await expect.poll(() => changed).toBeGreaterThanOrEqual(2);
    await client.close();
  });

  it("uploads a spec, registers a connector using it, replaces it, and drives it from the CLI with --url", async () => {
    const spec = JSON.stringify(itemsSpec("9"));
    const up = await adminFetch("/admin/specs/items9.json", {
      method: "PUT",
      body: JSON.stringify({ content: spec }),
    });
    expect(up.status).toBe(200);
    expect(((await up.json()) as { path: string }).path).toBe("specs/items9.json");
    const bad = await adminFetch("/admin/specs/..%2Fescape.json", {
      method: "PUT",
      body: JSON.stringify({ content: "x" }),
    });
    expect(bad.status).toBe(422);

    const def = { kind: "rest", spec: "specs/items9.json", baseUrl: upstream.url };
    expect(
      (await adminFetch("/admin/connectors/api9", { method: "PUT", body: JSON.stringify(def) })).status,
    ).toBe(200);
    const replaced = await adminFetch("/admin/connectors/api9", {
      method: "PUT",
      body: JSON.stringify({ ...def, description: "replaced", timeoutMs: 1234 }),
    });
    expect(replaced.status).toBe(200);
    expect(readFileSync(join(deployment.dir, "connectors", "api9.json"), "utf8")).toContain(
      '"timeoutMs": 1234',
    );
    expect(runtime.gateway.registry.get("api9__listItems")?.timeoutMs).toBe(1234);
    // A body that names another connector is refused; the old file stays.
    const collide = await adminFetch("/admin/connectors/api9", {
      method: "PUT",
      body: JSON.stringify({ ...def, name: "api" }),
    });
    expect(collide.status).toBe(422);
    expect(readFileSync(join(deployment.dir, "connectors", "api9.json"), "utf8")).toContain(
      '"timeoutMs": 1234',
    );

    const { command, args } = cliCommand(
      "connectors",
      "remove",
      "api9",
      "--url",
      new URL("/", http.url).href,
      "--token",
      adminToken,
    );
    const { stdout } = await promisify(execFile)(command, args, { timeout: 60_000 });
    expect(JSON.parse(stdout)).toMatchObject({ ok: true });
    expect(existsSync(join(deployment.dir, "connectors", "api9.json"))).toBe(false);
  });

  it("hot-reloads a scope manifest edited on disk", async () => {
    const { client } = await connect(http.url, readerToken);
    expect(await allToolNames(client)).not.toContain("inv__query");
    deployment.write("scopes/reader.json", {
      name: "reader",
      description: "Reads items.",
      tools: ["inv__get_item", "inv__query", "api__listItems"],
    });
    await expect.poll(() => allToolNames(client), { timeout: 10_000 }).toContain("inv__query");
    // A broken edit keeps the last good state.
    writeFileSync(join(deployment.dir, "scopes", "reader.json"), "{ not json");
    await new Promise((r) => setTimeout(r, 600));
    expect(await allToolNames(client)).toContain("inv__query");
    deployment.write("scopes/reader.json", {
      name: "reader",
      description: "Reads items.",
      tools: ["inv__get_item", "inv__query", "api__listItems"],
    });
    await client.close();
  });

  it("withholds a pinned tool whose upstream definition changed until an admin accepts it", async () => {
    const { client } = await connect(http.url, writerToken);
    deployment.write("connectors/specs/items.json", itemsSpec("2"));
    const reload = await adminFetch("/admin/reload", {
      method: "POST",
      body: JSON.stringify({ force: true }),
    });
    const report = (await reload.json()) as {
      ok: boolean;
      toolChanges: { tool: string; change: string; withheld?: boolean }[];
    };
    expect(report.ok).toBe(true);
    expect(report.toolChanges).toContainEqual(
      expect.objectContaining({ tool: "api__listItems", change: "changed", withheld: true }),
    );
    const hidden = await client
      .callTool({ name: "api__listItems", arguments: {} })
      .catch((e: { code?: number }) => e);
    expect((hidden as { code?: number }).code).toBe(-32602);
    const tools = (await (await adminFetch("/admin/tools")).json()) as { withheld: { tool: string }[] };
    expect(tools.withheld.map((w) => w.tool)).toEqual(["api__listItems"]);

    const accept = await adminFetch("/admin/tools/api__listItems/accept", { method: "POST", body: "{}" });
    expect(accept.status).toBe(200);
    const back = await client.callTool({ name: "api__listItems", arguments: {} });
    expect(back.isError).toBeFalsy();
    const { tools: listed } = await client.listTools();
    expect(listed.find((t) => t.name === "api__listItems")?.description).toContain("(2)");
    await client.close();
  });

  it("parks a call that needs approval, runs it exactly once after a different identity approved it", async () => {
    const payer = await issuer.sign({ aud: AUDIENCE, sub: "dave", scope: "payer approver" });
    const approver = await issuer.sign({ aud: AUDIENCE, sub: "erin", scope: "approver" });
    const { client } = await connect(http.url, payer);
    const qty = async () =>
      (
        (await client.callTool({ name: "inv__get_item", arguments: { sku: "C-3" } })).structuredContent as {
          rows: { qty: number }[];
        }
      ).rows[0]!.qty;
    const before = await qty();

    const parked = await client.callTool({ name: "inv__set_qty", arguments: { sku: "C-3", qty: 500 } });
    expect(parked.isError).toBe(true);
    expect((parked.content as { text: string }[])[0]!.text).toMatch(/^APPROVAL_REQUIRED:/);
    const approvalId = (parked._meta?.["portcullis/error"] as { approvalId: string }).approvalId;
    expect(approvalId).toMatch(/^apr_/);
    expect(await qty()).toBe(before);

    // Separation of duties: the requester cannot approve its own call.
    const self = await adminFetch(
      `/admin/approvals/${approvalId}/approve`,
      { method: "POST", body: "{}" },
      payer,
    );
    expect(self.status).toBe(403);
    const ok = await adminFetch(
      `/admin/approvals/${approvalId}/approve`,
      { method: "POST", body: "{}" },
      approver,
    );
    expect(ok.status).toBe(200);

    // A changed argument is a different call: it needs its own approval.
    const changed = await client.callTool({ name: "inv__set_qty", arguments: { sku: "C-3", qty: 501 } });
    expect((changed.content as { text: string }[])[0]!.text).toMatch(/^APPROVAL_REQUIRED:/);

    const ran = await client.callTool({ name: "inv__set_qty", arguments: { sku: "C-3", qty: 500 } });
    expect(ran.isError).toBeFalsy();
    expect(await qty()).toBe(500);
    const again = await client.callTool({ name: "inv__set_qty", arguments: { sku: "C-3", qty: 500 } });
    expect((again.content as { text: string }[])[0]!.text).toMatch(/^APPROVAL_REQUIRED:/);
    await client.close();
  });

  it("audits admin changes and tool changes with the acting identity", async () => {
    const log = runtime.governance.auditLog!;
    const { records } = log.query({ type: "admin.change", limit: 50 });
    const events = records.map(
      (r) =>
        (r.record as unknown as { event: { detail?: { action?: string }; identity?: { subject: string } } })
          .event,
    );
    expect(events.map((e) => e.detail?.action)).toEqual(
      expect.arrayContaining(["connector.register", "connector.remove", "reload", "tool.accept"]),
    );
    for (const e of events) expect(e.identity?.subject).toBe("carol");
    const changed = log.query({ type: "tool.changed", limit: 50 }).records;
    expect(changed.length).toBeGreaterThan(0);
  });
});
