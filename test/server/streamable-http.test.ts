import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  JSONRPCMessageSchema,
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHttpServer } from "../../src/server/http.js";
import type { Runtime } from "../../src/server/runtime.js";
import { isJsonRpcMessage } from "../../src/server/streamable-http.js";
import { createDeployment, type Deployment } from "../helpers/deployment.js";
import { startHttpGateway } from "../helpers/http-gateway.js";
import { INIT } from "../helpers/mcp-raw.js";

const ACCEPT_BOTH = "application/json, text/event-stream";
// Runs until the connector's 2 s timeout.
const SLOW_SQL = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

describe("isJsonRpcMessage", () => {
  const valid: Record<string, unknown>[] = [
    { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x", arguments: {} } },
    { jsonrpc: "2.0", id: "a", method: "ping" },
    { jsonrpc: "2.0", id: 2, method: "m", params: { _meta: { progressToken: "t", other: 1 } } },
    {
      jsonrpc: "2.0",
      method: "notifications/x",
      params: { _meta: { "io.modelcontextprotocol/related-task": { taskId: "t" } } },
    },
    { jsonrpc: "2.0", method: "notifications/initialized" },
    { jsonrpc: "2.0", id: 3, result: {} },
    { jsonrpc: "2.0", id: 3, result: { _meta: { progressToken: 4 }, content: [] } },
    { jsonrpc: "2.0", id: 4, error: { code: -32601, message: "no", data: [1] } },
    { jsonrpc: "2.0", error: { code: -32700, message: "parse" } },
  ];
  const values = [undefined, null, 0, 1.5, 2 ** 53, -1, "s", "", true, [], {}, [1], { a: 1 }];
  const keys = ["jsonrpc", "id", "method", "params", "result", "error", "extra", "_meta"];
  const cases: unknown[] = [...values];
  for (const base of valid) {
    cases.push(base);
    for (const key of keys) {
      for (const v of values) {
        const copy: Record<string, unknown> = structuredClone(base);
        if (v === undefined) delete copy[key];
        else copy[key] = v;
        cases.push(copy);
        // One level down: params, result, error and their _meta.
        for (const inner of ["params", "result", "error"] as const) {
          const nested = base[inner];
          if (typeof nested !== "object" || nested === null) continue;
          for (const field of ["_meta", "code", "message", "name"]) {
            const deep: Record<string, Record<string, unknown>> = structuredClone(base) as never;
            if (v === undefined) delete deep[inner]![field];
            else deep[inner]![field] = v;
            cases.push(deep);
            const meta = { progressToken: v, "io.modelcontextprotocol/related-task": { taskId: v } };
            const withMeta: Record<string, Record<string, unknown>> = structuredClone(base) as never;
            withMeta[inner]!._meta = meta;
            cases.push(withMeta);
          }
        }
      }
    }
  }

  it("accepts and refuses exactly what the SDK's JSONRPCMessageSchema does", () => {
    const disagreements = cases.filter(
      (c) => isJsonRpcMessage(c) !== JSONRPCMessageSchema.safeParse(c).success,
    );
    expect(cases.length).toBeGreaterThan(5000);
    expect(cases.filter((c) => isJsonRpcMessage(c)).length).toBeGreaterThan(100);
    expect(disagreements).toEqual([]);
  });
});

describe("Streamable HTTP transport (raw HTTP against a real gateway on port 0)", () => {
  let deployment: Deployment;
  let runtime: Runtime;
  let http: RunningHttpServer;
  const logLines: string[] = [];

  beforeAll(async () => {
    deployment = createDeployment({ config: { transports: { http: { port: 0 } } } });
    // Debug level, captured: a dropped answer is logged, not thrown.
    const logger = pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) });
    ({ runtime, http } = await startHttpGateway(deployment, { logger }));
  });

  afterAll(async () => {
    await http?.close();
    await runtime?.close();
    deployment?.cleanup();
  });

  function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(http.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT_BOTH, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  }

  async function openSession(): Promise<Record<string, string>> {
    const res = await post(INIT);
    expect(res.status).toBe(200);
    const sessionId = res.headers.get("mcp-session-id")!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const headers = { "mcp-session-id": sessionId, "mcp-protocol-version": LATEST_PROTOCOL_VERSION };
    expect((await post({ jsonrpc: "2.0", method: "notifications/initialized" }, headers)).status).toBe(202);
    return headers;
  }

  async function expectError(res: Response, status: number, code: number, message: RegExp): Promise<void> {
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as {
      jsonrpc: string;
      id: unknown;
      error: { code: number; message: string };
    };
    expect(body).toMatchObject({ jsonrpc: "2.0", id: null, error: { code } });
    expect(body.error.message).toMatch(message);
  }

  it("answers initialize with a JSON body and the session id", async () => {
    const res = await post(INIT);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("mcp-session-id")).toMatch(/^[0-9a-f-]{36}$/);
    const body = (await res.json()) as { id: number; result: { protocolVersion: string } };
    expect(body.id).toBe(1);
    expect(body.result.protocolVersion).toBe(LATEST_PROTOCOL_VERSION);
  });

  it("refuses a POST whose Accept lacks text/event-stream with 406", async () => {
    await expectError(await post(INIT, { accept: "application/json" }), 406, -32000, /Not Acceptable/);
  });

  it("refuses a POST that is not application/json with 415", async () => {
    const session = await openSession();
    const ping = { jsonrpc: "2.0", id: 5, method: "ping" };
    // A substring is not a media type.
    const res = await post(ping, { ...session, "content-type": "text/plain; a=application/json" });
    await expectError(res, 415, -32000, /Unsupported Media Type/);
    const charset = await post(ping, { ...session, "content-type": "application/json; charset=utf-8" });
    expect(charset.status).toBe(200);
  });

  it("refuses a body that is not a JSON-RPC message with 400 / -32700", async () => {
    const session = await openSession();
    const res = await post({ jsonrpc: "2.0", id: 1, method: "ping", stray: true }, session);
    await expectError(res, 400, -32700, /Invalid JSON-RPC message/);
    const batch = await post([{ jsonrpc: "2.0", id: 2, method: "ping" }, { id: 3 }], session);
    await expectError(batch, 400, -32700, /Invalid JSON-RPC message/);
  });

  it("refuses a second initialize in a session with 400 / -32600", async () => {
    const session = await openSession();
    await expectError(await post(INIT, session), 400, -32600, /already initialized/);
  });

  it("refuses a request without a session id with 400", async () => {
    const res = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    await expectError(res, 400, -32000, /Mcp-Session-Id/);
  });

  it("answers an unknown session id with 404", async () => {
    const res = await post(
      { jsonrpc: "2.0", id: 1, method: "tools/list" },
      { "mcp-session-id": "00000000-0000-4000-8000-000000000000" },
    );
    await expectError(res, 404, -32001, /session not found/i);
  });

  it("refuses an unsupported MCP-Protocol-Version with 400 naming the supported ones", async () => {
    const session = await openSession();
    const res = await post(
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
      { ...session, "mcp-protocol-version": "1999-01-01" },
    );
    await expectError(res, 400, -32000, /Unsupported protocol version: 1999-01-01/);
    const text = await (
      await post({ jsonrpc: "2.0", id: 2, method: "ping" }, { ...session, "mcp-protocol-version": "0" })
    ).text();
    for (const version of SUPPORTED_PROTOCOL_VERSIONS) expect(text).toContain(version);
  });

  it("answers notifications with 202 and an empty body", async () => {
    const session = await openSession();
    const res = await post({ jsonrpc: "2.0", method: "notifications/roots/list_changed" }, session);
    expect(res.status).toBe(202);
    expect(await res.text()).toBe("");
  });

  it("answers a batch of two requests (and a notification) with an array in request order", async () => {
    const session = await openSession();
    const res = await post(
      [
        {
          jsonrpc: "2.0",
          id: "call",
          method: "tools/call",
          params: { name: "inv__get_item", arguments: { sku: "A-1" } },
        },
        { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
        { jsonrpc: "2.0", id: 7, method: "ping" },
      ],
      session,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toBe(session["mcp-session-id"]);
    const body = (await res.json()) as { id: unknown; result: Record<string, unknown> }[];
    expect(body.map((m) => m.id)).toEqual(["call", 7]);
    expect(body[0]!.result.structuredContent).toMatchObject({
      rows: [{ id: 1, sku: "A-1", name: "anvil", qty: 3, price: "199.99" }],
    });
    expect(body[1]!.result).toEqual({});
  });

  it("answers an unsupported method with 405 and Allow", async () => {
    const session = await openSession();
    const res = await fetch(http.url, { method: "PUT", headers: session });
    expect(res.headers.get("allow")).toBe("GET, POST, DELETE");
    await expectError(res, 405, -32000, /Method not allowed/);
  });

  it("opens one GET stream per session: 406 without text/event-stream, 409 for a second", async () => {
    const session = await openSession();
    await expectError(
      await fetch(http.url, { headers: { ...session, accept: "application/json" } }),
      406,
      -32000,
      /text\/event-stream/,
    );
    const stream = await fetch(http.url, { headers: { ...session, accept: "text/event-stream" } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toBe("text/event-stream");
    expect(stream.headers.get("cache-control")).toContain("no-cache");
    expect(stream.headers.get("mcp-session-id")).toBe(session["mcp-session-id"]);
    const second = await fetch(http.url, { headers: { ...session, accept: "text/event-stream" } });
    await expectError(second, 409, -32000, /Only one SSE stream/);
    // Once the client lets go of the stream, the session takes a new one.
    await stream.body!.cancel();
    await waitFor(async () => {
      const again = await fetch(http.url, { headers: { ...session, accept: "text/event-stream" } });
      await again.body?.cancel();
      return again.status === 200;
    });
  });

  it("ends a session on DELETE; the id then answers 404", async () => {
    const session = await openSession();
    const del = await fetch(http.url, { method: "DELETE", headers: session });
    expect(del.status).toBe(200);
    const res = await post({ jsonrpc: "2.0", id: 3, method: "ping" }, session);
    await expectError(res, 404, -32001, /session not found/i);
  });

  it("answers a call still running when its session ends with a JSON-RPC error", async () => {
    const session = await openSession();
    const call = post(
      {
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "inv__query", arguments: { sql: SLOW_SQL } },
      },
      session,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(http.url, { method: "DELETE", headers: session })).status).toBe(200);
    const res = await call;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      jsonrpc: "2.0",
      id: 9,
      error: { code: -32000, message: "Connection closed: the session ended" },
    });
  });

  it("drops the answer of a client that hung up, and the session carries on", async () => {
    const session = await openSession();
    logLines.length = 0;
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 11,
      method: "tools/call",
      params: { name: "inv__query", arguments: { sql: SLOW_SQL } },
    });
    const req = request(http.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT_BOTH, ...session },
    });
    req.on("error", () => undefined);
    req.end(body);
    await new Promise((r) => setTimeout(r, 200));
    req.destroy();
    await waitFor(async () => logLines.some((l) => l.includes("answer dropped")));
    // The slow call ends at its 2 s timeout; its response finds no connection and is dropped too.
    await waitFor(async () => logLines.some((l) => l.includes("response dropped")), 5_000);
    const res = await post({ jsonrpc: "2.0", id: 12, method: "ping" }, session);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ jsonrpc: "2.0", id: 12, result: {} });
  });
});

describe("Streamable HTTP session expiry", () => {
  it("ends an unused session but never one whose call is still running", async () => {
    const deployment = createDeployment({
      config: { transports: { http: { port: 0, sessionIdleTimeoutMs: 500 } } },
    });
    const { runtime, http } = await startHttpGateway(deployment);
    try {
      const post = (body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
        fetch(http.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: ACCEPT_BOTH, ...headers },
          body: JSON.stringify(body),
        });
      const init = await post(INIT);
      const session = {
        "mcp-session-id": init.headers.get("mcp-session-id")!,
        "mcp-protocol-version": LATEST_PROTOCOL_VERSION,
      };
      await post({ jsonrpc: "2.0", method: "notifications/initialized" }, session);
      // Runs to the connector's 2 s timeout: four idle periods, each swept.
      const res = await post(
        {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "inv__query", arguments: { sql: SLOW_SQL } },
        },
        session,
      );
      const answer = (await res.json()) as { result?: { isError?: boolean; content: { text: string }[] } };
      expect(answer.result?.isError).toBe(true);
      expect(answer.result?.content[0]?.text).toMatch(/^UPSTREAM_TIMEOUT/);
      expect(http.sessionCount()).toBe(1);
      // Unused after that: swept.
      await waitFor(async () => http.sessionCount() === 0, 3_000);
      expect((await post({ jsonrpc: "2.0", id: 3, method: "ping" }, session)).status).toBe(404);
    } finally {
      await http.close();
      await runtime.close();
      deployment.cleanup();
    }
  });
});

describe("Streamable HTTP transport with the SDK client", () => {
  let deployment: Deployment;
  let runtime: Runtime;
  let http: RunningHttpServer;

  beforeAll(async () => {
    deployment = createDeployment({ config: { transports: { http: { port: 0 } } } });
    ({ runtime, http } = await startHttpGateway(deployment));
  });

  afterAll(async () => {
    await http?.close();
    await runtime?.close();
    deployment?.cleanup();
  });

  it("initializes, lists, calls, gets tools/list_changed on the GET stream, and closes", async () => {
    const transport = new StreamableHTTPClientTransport(http.url);
    const client = new Client({ name: "sdk-test", version: "1.0.0" });
    await client.connect(transport);
    expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(http.sessionCount()).toBe(1);

    const first = await client.listTools();
    expect(first.tools.map((t) => t.name)).toEqual(["inv__get_item", "inv__query"]);
    const result = await client.callTool({ name: "inv__get_item", arguments: { sku: "C-3" } });
    expect(result.structuredContent).toMatchObject({
      rows: [{ id: 3, sku: "C-3", name: "chisel", qty: 12, price: "12.00" }],
    });

    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changed++;
    });
    const file = join(deployment.dir, "connectors", "inv.json");
    const inv = JSON.parse(readFileSync(file, "utf8")) as { tools: Record<string, unknown>[] };
    inv.tools.push({
      name: "count_items",
      description: "Counts items.",
      statement: "SELECT count(*) AS n FROM items",
      readOnly: true,
    });
    // The client opens its GET stream just after initialize: until it is there a change is not
    // announced, so the tool is taken away and added again until one announcement arrives.
    const original = JSON.parse(readFileSync(file, "utf8")) as unknown;
    await waitFor(async () => {
      deployment.write("connectors/inv.json", original);
      await runtime.reload("test");
      deployment.write("connectors/inv.json", inv);
      await runtime.reload("test");
      await new Promise((r) => setTimeout(r, 100));
      return changed > 0;
    });
    const pages = [await client.listTools()];
    while (pages.at(-1)!.nextCursor)
      pages.push(await client.listTools({ cursor: pages.at(-1)!.nextCursor! }));
    expect(pages.flatMap((p) => p.tools.map((t) => t.name))).toContain("inv__count_items");

    await transport.terminateSession();
    await client.close();
    await waitFor(async () => http.sessionCount() === 0);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
