import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { spawn } from "node:child_process";
import { request } from "node:http";
import { connect as tcpConnect } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RunningHttpServer } from "../../src/server/http.js";
import type { Runtime } from "../../src/server/runtime.js";
import { cliCommand, createDeployment, type Deployment } from "../helpers/deployment.js";
import { startHttpGateway } from "../helpers/http-gateway.js";
import { INIT } from "../helpers/mcp-raw.js";

const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

async function connect(url: URL): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(url);
  const client = new Client({ name: "http-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

describe("MCP over Streamable HTTP (real HTTP on port 0)", () => {
  let deployment: Deployment;
  let runtime: Runtime;
  let http: RunningHttpServer;

  beforeAll(async () => {
    deployment = createDeployment({
      extraTools: 1,
      config: { transports: { http: { port: 0, maxBodyBytes: 4096 } } },
    });
    ({ runtime, http } = await startHttpGateway(deployment, {
      extra: { ready: () => runtime.readiness(), metrics: () => runtime.metrics.render() },
    }));
  });

  afterAll(async () => {
    await http?.close();
    await runtime?.close();
    deployment?.cleanup();
  });

  it("initializes, pages through tools/list and calls a tool", async () => {
    const { client } = await connect(http.url);
    const first = await client.listTools();
    expect(first.tools.map((t) => t.name)).toEqual(["inv__count_000", "inv__get_item"]);
    expect(first.nextCursor).toBeDefined();
    const second = await client.listTools({ cursor: first.nextCursor! });
    expect(second.tools.map((t) => t.name)).toEqual(["inv__query", "inv__set_qty"]);
    expect(second.nextCursor).toBeUndefined();
    const result = await client.callTool({ name: "inv__get_item", arguments: { sku: "B-2" } });
    expect((result.structuredContent as { rows: unknown[] }).rows).toEqual([
      { id: 2, sku: "B-2", name: "bucket", qty: 40, price: "4.50" },
    ]);
    await client.close();
  });

  it("sets tool annotations truthfully", async () => {
    const { client } = await connect(http.url);
    const { tools } = await client.listTools();
    const page2 = await client.listTools({ cursor: (await client.listTools()).nextCursor! });
    const byName = new Map([...tools, ...page2.tools].map((t) => [t.name, t.annotations]));
    expect(byName.get("inv__get_item")).toMatchObject({ readOnlyHint: true, destructiveHint: false });
    expect(byName.get("inv__set_qty")).toMatchObject({ readOnlyHint: false, idempotentHint: true });
    await client.close();
  });

  it("refuses a foreign Origin with 403", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, origin: "https://evil.example" },
      body: JSON.stringify(INIT),
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("allowedOrigins");
  });

  it("accepts a loopback Origin while bound to loopback", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, origin: "http://localhost:6274" },
      body: JSON.stringify(INIT),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses a foreign Host header (DNS rebinding) with 403", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        http.url,
        { method: "POST", headers: { ...MCP_HEADERS, host: "attacker.example:80" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify(INIT));
    });
    expect(status).toBe(403);
  });

  it("answers an unknown session id with 404", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, "mcp-session-id": "00000000-0000-0000-0000-000000000000" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(res.status).toBe(404);
  });

  it("ends a session on DELETE; the id then answers 404", async () => {
    const { client, transport } = await connect(http.url);
    const id = transport.sessionId!;
    expect(id).toBeDefined();
    const before = http.sessionCount();
    await transport.terminateSession();
    expect(http.sessionCount()).toBe(before - 1);
    const res = await fetch(http.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, "mcp-session-id": id, "mcp-protocol-version": LATEST_PROTOCOL_VERSION },
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }),
    });
    expect(res.status).toBe(404);
    await client.close();
  });

  it("refuses an oversized body with 413", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: MCP_HEADERS,
      body: JSON.stringify({ ...INIT, padding: "x".repeat(10_000) }),
    });
    expect(res.status).toBe(413);
  });

  it("refuses an oversized body sent in chunks (no Content-Length) with 413, and keeps serving", async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(http.url, { method: "POST", headers: MCP_HEADERS }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      });
      // The server may close the connection before the last chunk is written.
      req.on("error", (err) => (answered ? undefined : reject(err)));
      let answered = false;
      req.on("response", () => (answered = true));
      const chunk = JSON.stringify({ ...INIT, padding: "x".repeat(1_000) }).slice(0, 1_000);
      for (let i = 0; i < 6; i++) req.write(chunk);
      req.end();
    });
    expect(answer.status).toBe(413);
    expect(answer.body).toContain("over the limit of 4096 bytes");
    const { client } = await connect(http.url);
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
    await client.close();
  });

  /**
   * POSTs `body` in two writes `gapMs` apart, so the server sees the request before its body has
   * ended; with Content-Length, or chunked.
   */
  function postInTwoParts(
    body: string,
    gapMs: number,
    chunked = false,
  ): Promise<{ status: number; body: string; session?: string }> {
    return new Promise((resolve, reject) => {
      const bytes = Buffer.from(body);
      const req = request(
        http.url,
        {
          method: "POST",
          headers: chunked ? MCP_HEADERS : { ...MCP_HEADERS, "content-length": bytes.length },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => {
            const session = res.headers["mcp-session-id"];
            resolve({
              status: res.statusCode!,
              body: text,
              ...(typeof session === "string" ? { session } : {}),
            });
          });
        },
      );
      let answered = false;
      req.on("response", () => (answered = true));
      req.on("error", (err) => (answered ? undefined : reject(err)));
      req.write(bytes.subarray(0, 40));
      setTimeout(() => req.end(bytes.subarray(40)), gapMs);
    });
  }

  it("reads a body that arrives in pieces, after the request itself", async () => {
    const answer = await postInTwoParts(JSON.stringify(INIT), 150);
    expect(answer.status).toBe(200);
    expect(answer.session).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(answer.body)).toMatchObject({
      jsonrpc: "2.0",
      id: INIT.id,
      result: { serverInfo: {} },
    });
  });

  it("refuses a chunked body that goes over the limit after the request arrived with 413", async () => {
    const answer = await postInTwoParts(JSON.stringify({ ...INIT, padding: "x".repeat(5_000) }), 150, true);
    expect(answer.status).toBe(413);
    expect(answer.body).toContain("over the limit of 4096 bytes");
  });

  it("refuses a chunked body over the limit that arrived whole, in one segment, with 413", async () => {
    const url = new URL(http.url);
    const data = JSON.stringify({ ...INIT, padding: "x".repeat(5_000) });
    const wire =
      `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\ncontent-type: application/json\r\n` +
      `accept: application/json, text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n` +
      `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n0\r\n\r\n`;
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tcpConnect(Number(url.port), url.hostname, () => socket.end(wire));
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => (text += c));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply).toContain("over the limit of 4096 bytes");
  });

  it("refuses a request without a session that is not initialize with 400", async () => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: MCP_HEADERS,
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }),
    });
    expect(res.status).toBe(400);
  });

  it("serves /healthz and /readyz", async () => {
    const health = await fetch(new URL("/healthz", http.url));
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await fetch(new URL("/readyz", http.url));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", connectors: { inv: "up" }, audit: "up" });
  });

  it("/readyz: an audit log that lost an fsync takes the gateway out until restart", async () => {
    // Stand-in for a disk error (none can be produced here): the health the log reports after a
    // failed fsync, as test/audit/wal-sync.test.ts checks on the real log.
    const health = vi.spyOn(runtime.governance.auditLog!, "health").mockReturnValue({
      ok: false,
      size: 1,
      detail: "fsync of the write-ahead log failed (EIO)",
      restartNeeded: true,
    });
    try {
      const res = await fetch(new URL("/readyz", http.url));
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({
        status: "not ready",
        audit: "down: fsync of the write-ahead log failed (EIO)",
      });
      // A store that failed once (locked, full) is shown but retried by the next call: still ready.
      health.mockReturnValue({ ok: false, size: 1, detail: "the database is locked (SQLITE_BUSY)" });
      const locked = await fetch(new URL("/readyz", http.url));
      expect(locked.status).toBe(200);
      expect(await locked.json()).toMatchObject({ audit: "down: the database is locked (SQLITE_BUSY)" });
    } finally {
      health.mockRestore();
    }
  });

  it("counts calls, refusals and latency in /metrics", async () => {
    const { client } = await connect(http.url);
    await client.callTool({ name: "inv__get_item", arguments: { sku: "A-1" } });
    await client.callTool({ name: "inv__get_item", arguments: { sku: "A-1" } });
    await client.callTool({ name: "inv__set_qty", arguments: { sku: 5 } });
    await client.callTool({ name: "inv__nope", arguments: {} }).catch(() => undefined);
    await client.close();
    const res = await fetch(new URL("/metrics", http.url));
    expect(res.status).toBe(200);
    const text = await res.text();
    const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? NaN);
    expect(
      value(/portcullis_tool_calls_total\{connector="inv",tool="inv__get_item",outcome="ok"\} (\d+)/),
    ).toBeGreaterThanOrEqual(2);
    expect(
      value(/portcullis_tool_call_refusals_total\{reason="invalid_arguments"\} (\d+)/),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(/portcullis_tool_call_refusals_total\{reason="unknown_tool"\} (\d+)/),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(/portcullis_upstream_duration_seconds_count\{connector="inv",tool="inv__get_item"\} (\d+)/),
    ).toBeGreaterThanOrEqual(2);
    expect(text).toContain("portcullis_tool_calls_in_flight");
  });

  it("runs one session's slow call concurrently with another session's calls", async () => {
    const slow = await connect(http.url);
    const fast = await connect(http.url);
    // A recursive CTE that never yields a row: only the connector's timeout (2 s) ends it.
    const slowCall = slow.client.callTool({
      name: "inv__query",
      arguments: {
        sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
      },
    });
    const started = Date.now();
    const quick = await fast.client.callTool({ name: "inv__get_item", arguments: { sku: "C-3" } });
    const quickMs = Date.now() - started;
    expect(quick.isError).toBeFalsy();
    const slowResult = await slowCall;
    const slowMs = Date.now() - started;
    expect(slowResult.isError).toBe(true);
    expect((slowResult.content as { text: string }[])[0]!.text).toMatch(/^UPSTREAM_TIMEOUT:/);
    // The quick call finished while the slow one was still running.
    expect(quickMs).toBeLessThan(slowMs);
    await slow.client.close();
    await fast.client.close();
  });
});

describe("a client that goes away mid-body", () => {
  it("is not logged as a server failure, and the gateway keeps serving", async () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line));
        cb();
      },
    });
    const deployment = createDeployment();
    const { runtime, http } = await startHttpGateway(deployment, { logger: pino({ level: "debug" }, sink) });
    try {
      // Headers promise 1,000 bytes; 10 arrive, then the connection closes.
      await new Promise<void>((resolve, reject) => {
        const socket = tcpConnect(Number(http.url.port), http.url.hostname, () => {
          socket.write(
            `POST ${http.url.pathname} HTTP/1.1\r\nHost: ${http.url.host}\r\ncontent-type: application/json\r\n` +
              `accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{"jsonrpc"`,
            () => setTimeout(() => socket.destroy(), 50),
          );
        });
        socket.on("close", () => resolve());
        socket.on("error", reject);
      });
      await new Promise((r) => setTimeout(r, 100));
      const { client } = await connect(http.url);
      expect((await client.listTools()).tools.length).toBeGreaterThan(0);
      await client.close();
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
      expect(lines.some((l) => l.msg === "http request failed")).toBe(false);
    } finally {
      await http.close();
      await runtime.close();
      deployment.cleanup();
    }
  });
});

describe("graceful shutdown", () => {
  it("drains a call in flight on SIGTERM, then exits 0", async () => {
    const deployment = createDeployment({ config: { logging: { level: "info" } } });
    try {
      const { command, args } = cliCommand("serve", "--http", "--config", deployment.configPath);
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
      let stderr = "";
      const url = await new Promise<URL>((resolve, reject) => {
        child.stderr.on("data", (c: Buffer) => {
          stderr += c.toString();
          const m = /Streamable HTTP at (\S+)/.exec(stderr);
          if (m) resolve(new URL(m[1]!));
        });
        child.on("exit", () => reject(new Error(`server exited early: ${stderr}`)));
      });
      const { client } = await connect(url);
      // Runs until the 2 s connector timeout: in flight when SIGTERM arrives.
      const call = client.callTool({
        name: "inv__query",
        arguments: {
          sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        },
      });
      await new Promise((r) => setTimeout(r, 300));
      child.kill("SIGTERM");
      const result = await call;
      expect((result.content as { text: string }[])[0]!.text).toMatch(/^UPSTREAM_TIMEOUT:/);
      expect(await exited).toBe(0);
      expect(stderr).toContain("draining calls in flight");
    } finally {
      deployment.cleanup();
    }
  });
});
