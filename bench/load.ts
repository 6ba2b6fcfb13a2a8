import { Agent, request } from "node:http";
import { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { GatewayCommand } from "./gateway-process.js";
import { ITEM_TOOL } from "./deployment.js";
import { cpuMsOf } from "./machine.js";
import { perSecond } from "./stats.js";

/** Distinct arguments per call: the gateway's loop guard rightly refuses identical repeats. */
export function itemArgs(session: number, i: number): { id: string } {
  return { id: `s${session}-${i}` };
}

/** One plain keep-alive GET to the upstream, body read and parsed: the baseline of a tool call. */
export function directGet(agent: Agent, baseUrl: string, id: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}/items/${encodeURIComponent(id)}`, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`upstream answered ${res.statusCode}`);
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

export async function directLatencies(baseUrl: string, warmup: number, n: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < warmup; i++) await directGet(agent, baseUrl, `warm-${i}`);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await directGet(agent, baseUrl, `d-${i}`);
      samples.push(performance.now() - t);
    }
    return samples;
  } finally {
    agent.destroy();
  }
}

/**
 * A `fetch` for the SDK's HTTP client transport over node:http with a keep-alive agent. The load
 * client shares the machine's two cores with the gateway; Node's built-in fetch (undici) costs
 * several times more CPU per request, which would be measured as the gateway's lost throughput.
 * SSE answers stay streams (the SDK reads the standalone GET stream); JSON answers are buffered.
 *
 * A successful JSON answer comes back as a minimal Response (status, headers.get, json, text, no
 * body stream): what the SDK transport reads of one. Building undici's Response, its body stream
 * and its json() reader cost ~80 µs of the client's CPU per call, measured into every latency row.
 * Anything else (SSE, errors, redirects, empty bodies) is a real Response, so the SDK's handling of
 * those is exactly its own.
 */
export function keepAliveFetch(agent: Agent): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = input instanceof Request ? input.url : input;
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
      const req = request(
        url,
        { method: init?.method ?? "GET", headers, agent, ...(init?.signal ? { signal: init.signal } : {}) },
        (res) => {
          const status = res.statusCode ?? 0;
          const responseHeaders = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) responseHeaders.set(k, Array.isArray(v) ? v.join(", ") : v);
          }
          if (res.headers["content-type"]?.startsWith("text/event-stream")) {
            resolve(
              new Response(Readable.toWeb(res) as ReadableStream, { status, headers: responseHeaders }),
            );
            return;
          }
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const empty = status === 204 || status === 304;
            const body = Buffer.concat(chunks);
            if (
              status === 200 &&
              body.length > 0 &&
              res.headers["content-type"]?.startsWith("application/json")
            ) {
              resolve(jsonResponse(responseHeaders, body));
              return;
            }
            resolve(new Response(empty ? null : body, { status, headers: responseHeaders }));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(typeof init?.body === "string" ? init.body : undefined);
    });
}

/** A 200 JSON answer as the SDK transport reads it; see keepAliveFetch. */
function jsonResponse(headers: Headers, body: Buffer): Response {
  const text = (): Promise<string> => Promise.resolve(body.toString("utf8"));
  const lite = {
    status: 200,
    ok: true,
    statusText: "OK",
    type: "basic",
    url: "",
    redirected: false,
    headers,
    body: null,
    bodyUsed: false,
    text,
    json: () => text().then((t) => JSON.parse(t) as unknown),
  };
  return lite as unknown as Response;
}

/** Shared by every load session, as one agent process's HTTP client would be. */
const benchAgent = new Agent({ keepAlive: true, maxSockets: 256 });

export async function connectHttp(url: URL, name = "portcullis-bench"): Promise<Client> {
  const client = new Client({ name, version: "1.0.0" });
  const fetchImpl = process.env.BENCH_FETCH === "undici" ? undefined : keepAliveFetch(benchAgent);
  await client.connect(new StreamableHTTPClientTransport(url, fetchImpl ? { fetch: fetchImpl } : {}));
  return client;
}

export interface StdioSession {
  client: Client;
  pid: number;
  close(): Promise<void>;
}

/** The SDK's stdio client spawns the gateway itself, as a desktop MCP client does. */
export async function connectStdio(cmd: GatewayCommand, configPath: string): Promise<StdioSession> {
  const transport = new StdioClientTransport({
    command: cmd.command,
    args: [...cmd.args, "serve", "--stdio", "--config", configPath],
    stderr: "pipe",
  });
  let tail = "";
  transport.stderr?.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-4000);
  });
  const client = new Client({ name: "portcullis-bench-stdio", version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (err) {
    throw new Error(`stdio gateway did not start: ${(err as Error).message}\n${tail}`, { cause: err });
  }
  return { client, pid: transport.pid ?? -1, close: () => client.close() };
}

/** A tool call that must succeed: a refused or failed call in a benchmark is a broken setup. */
export async function callItem(client: Client, session: number, i: number): Promise<void> {
  const result = await client.callTool({ name: ITEM_TOOL, arguments: itemArgs(session, i) });
  if (result.isError) {
    const first = (result.content as { type: string; text?: string }[])[0];
    throw new Error(`tool call failed: ${first?.text ?? "(no text)"}`);
  }
}

export async function callLatencies(
  client: Client,
  warmup: number,
  n: number,
  session = 0,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await callItem(client, session, -1 - i);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await callItem(client, session, i);
    samples.push(performance.now() - t);
  }
  return samples;
}

/**
 * Sequential latency of the gateway and of the direct call, measured in alternating blocks (direct,
 * gateway, direct, …) so that both see the same machine: on a shared host the speed of the same
 * loop drifts by tens of percent within minutes, which would otherwise read as gateway overhead (or
 * hide it). Each block is still a tight loop of one kind of call, as when measured alone.
 */
export function pairedLatencies(
  client: Client,
  upstreamUrl: string,
  blocks: number,
  perBlock: number,
  session = 0,
): Promise<{ direct: number[]; gateway: number[] }> {
  let i = 0;
  return pairedCalls(() => callItem(client, session, i++), upstreamUrl, 200, blocks, perBlock);
}

/**
 * A tools/call as a minimal MCP client sends it once its session is open: one keep-alive POST with
 * the session's headers, the JSON answer read and checked. Set beside the SDK client's calls, it
 * separates what the gateway costs from what the SDK client costs on the same machine.
 */
export function rawToolCaller(client: Client, url: URL): (id: string) => Promise<void> {
  const transport = client.transport as { sessionId?: string; protocolVersion?: string } | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-session-id": transport?.sessionId ?? "",
    "mcp-protocol-version": transport?.protocolVersion ?? "2025-06-18",
  };
  let rpcId = 1_000_000;
  return (id) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id: rpcId++,
        method: "tools/call",
        params: { name: ITEM_TOOL, arguments: { id } },
      });
      const req = request(
        url,
        { method: "POST", agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              const answer = JSON.parse(text) as { result?: { isError?: boolean } };
              if (res.statusCode !== 200 || !answer.result || answer.result.isError)
                throw new Error(`raw tools/call failed: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
              resolve();
            } catch (err) {
              reject(err as Error);
            }
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
}

/** `call` in blocks alternating with direct calls (see pairedLatencies), after `warmup` calls. */
export async function pairedCalls(
  call: (id: string) => Promise<unknown>,
  upstreamUrl: string,
  warmup: number,
  blocks: number,
  perBlock: number,
): Promise<{ direct: number[]; gateway: number[] }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < warmup; i++) {
      await call(`pc-warm-${i}`);
      await directGet(agent, upstreamUrl, `pc-warm-${i}`);
    }
    const direct: number[] = [];
    const gateway: number[] = [];
    for (let b = 0; b < blocks; b++) {
      for (let i = 0; i < perBlock; i++) {
        const t = performance.now();
        await directGet(agent, upstreamUrl, `pcd-${b}-${i}`);
        direct.push(performance.now() - t);
      }
      for (let i = 0; i < perBlock; i++) {
        const t = performance.now();
        await call(`pcg-${b}-${i}`);
        gateway.push(performance.now() - t);
      }
    }
    return { direct, gateway };
  } finally {
    agent.destroy();
  }
}

export interface ThroughputResult {
  sessions: number;
  calls: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  callsPerSecond: number;
  latencies: number[];
  /** CPU per successful call, milliseconds: the gateway child's, and this process's (the clients'). */
  gatewayCpuMs: number;
  clientCpuMs: number;
}

/**
 * `sessions` MCP sessions (one Client each, as separate agents are), each calling back to back
 * for `durationMs` after a warm-up. Only successful calls count.
 */
export async function throughput(
  url: URL,
  sessions: number,
  durationMs: number,
  gatewayPid: number,
  onTick?: () => void,
  /** Session numbers in the call arguments start here: phases on one gateway must not repeat calls. */
  firstSession = 1000 + sessions * 10,
): Promise<ThroughputResult> {
  const clients = await Promise.all(
    Array.from({ length: sessions }, (_, s) => connectHttp(url, `bench-${sessions}-${s}`)),
  );
  try {
    await Promise.all(clients.map((c, s) => callItem(c, 1000 + s, -1).then(() => callItem(c, 1000 + s, -2))));
    let calls = 0;
    let errors = 0;
    let firstError: string | undefined;
    const latencies: number[] = [];
    const gatewayCpu0 = cpuMsOf(gatewayPid);
    const clientCpu0 = process.cpuUsage();
    const started = performance.now();
    const deadline = started + durationMs;
    const ticker = onTick ? setInterval(onTick, 250) : undefined;
    await Promise.all(
      clients.map(async (client, s) => {
        for (let i = 0; performance.now() < deadline; i++) {
          const t = performance.now();
          try {
            await callItem(client, firstSession + s, i);
            calls++;
            latencies.push(performance.now() - t);
          } catch (err) {
            errors++;
            firstError ??= (err as Error).message;
          }
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const clientCpu = process.cpuUsage(clientCpu0);
    const gatewayCpu = cpuMsOf(gatewayPid) - gatewayCpu0;
    if (ticker) clearInterval(ticker);
    return {
      gatewayCpuMs: gatewayCpu / calls,
      clientCpuMs: (clientCpu.user + clientCpu.system) / 1000 / calls,
      sessions,
      calls,
      errors,
      firstError,
      elapsedMs,
      callsPerSecond: perSecond(calls, elapsedMs),
      latencies,
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

/** Every page of tools/list, following nextCursor; returns the number of tools seen. */
export async function listAll(client: Client): Promise<{ tools: number; pages: number }> {
  let cursor: string | undefined;
  let tools = 0;
  let pages = 0;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    tools += page.tools.length;
    pages++;
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { tools, pages };
}

export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const value = await fn();
  return [performance.now() - t, value];
}

/**
 * One tools/list page as raw JSON-RPC over the client's session: the gateway's answer without the
 * SDK client's schema validation of every tool, which grows with page size and is client cost.
 */
export async function rawListPage(
  url: URL,
  sessionId: string,
  protocolVersion: string,
  id: number,
): Promise<number> {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sessionId,
      "mcp-protocol-version": protocolVersion,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list", params: {} }),
  });
  const text = await res.text();
  if (!res.ok || !text.includes('"tools"')) throw new Error(`raw tools/list failed: HTTP ${res.status}`);
  return text.length;
}

/**
 * The machine's own ceiling: plain keep-alive GETs to the upstream at `concurrency`, no gateway.
 * On a small shared machine this bounds what any HTTP path in front of the upstream can reach.
 */
export async function directThroughput(
  baseUrl: string,
  concurrency: number,
  durationMs: number,
  upstreamPid: number,
): Promise<{ callsPerSecond: number; cpuMsPerCall: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  try {
    let calls = 0;
    const cpu0 = process.cpuUsage();
    const upstreamCpu0 = cpuMsOf(upstreamPid);
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        for (let i = 0; performance.now() < deadline; i++) {
          await directGet(agent, baseUrl, `t${c}-${i}`);
          calls++;
        }
      }),
    );
    const elapsed = performance.now() - started;
    const cpu = process.cpuUsage(cpu0);
    const upstreamCpu = cpuMsOf(upstreamPid) - upstreamCpu0;
    return {
      callsPerSecond: perSecond(calls, elapsed),
      cpuMsPerCall: ((cpu.user + cpu.system) / 1000 + upstreamCpu) / calls,
    };
  } finally {
    agent.destroy();
  }
}
