import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, fsyncSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { directGet } from "./load.js";

/**
 * The host's floor under a gateway: a do-nothing forwarding proxy in a process of its own, with and
 * without one fsync before it forwards. It reads a JSON-RPC request (over HTTP, or as a line on
 * stdin), optionally writes 4 KB into a preallocated file and fsyncs it (as a durable intent record
 * costs: the audit log's write-ahead log is reused in place), makes the same keep-alive GET to the
 * upstream as the direct call, and answers with the upstream's body in a JSON-RPC result.
 *
 * Measured in blocks alternating with direct calls, as the gateway is, it says what the extra
 * process hop and the fsync cost on this machine before any gateway code runs: on hosts where a
 * process wake-up is slow, this floor alone can exceed a fixed latency budget. Whatever the gateway
 * adds above it is the gateway's own (MCP, authorisation, SQLite, records, validation).
 */
export type HopMode = "http" | "stdio";

export interface HopFloor {
  /** One call through the proxy; resolves with its answer parsed. */
  call(id: string): Promise<unknown>;
  close(): Promise<void>;
}

const RECORD_BYTES = 4096;
const FILE_BYTES = 8 * 1024 * 1024;

export async function startHopFloor(upstreamUrl: string, mode: HopMode, durable: boolean): Promise<HopFloor> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-hop-"));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      "--hop",
      mode,
      upstreamUrl,
      durable ? join(dir, "intent.log") : "-",
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const close = async (): Promise<void> => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    void exited.then(() => reject(new Error("the hop-floor proxy exited before it was ready")));
  });
  if (mode === "stdio") {
    const waiting: ((line: string) => void)[] = [];
    lines.on("line", (line) => waiting.shift()?.(line));
    return {
      call: (id) =>
        new Promise((resolve) => {
          waiting.push((line) => resolve(JSON.parse(line)));
          child.stdin!.write(`${requestBody(id)}\n`);
        }),
      close,
    };
  }
  const url = /^listening (\S+)$/.exec(first)?.[1];
  if (!url) throw new Error(`the hop-floor proxy said ${first}`);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return {
    call: (id) => post(agent, url, requestBody(id)),
    async close() {
      agent.destroy();
      await close();
    },
  };
}

/** A tools/call request as an MCP client sends it, so the proxy reads and parses as much. */
function requestBody(id: string): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "shop__getItem", arguments: { id } },
  });
}

function post(agent: Agent, url: string, body: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            if (res.statusCode !== 200) throw new Error(`hop-floor proxy answered ${res.statusCode}`);
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
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

/** The proxy's side: one request at a time, as the sequential latency phases send them. */
async function serveHop(mode: HopMode, upstreamUrl: string, file: string): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let fd: number | undefined;
  let offset = 0;
  const record = Buffer.alloc(RECORD_BYTES, 0x61);
  if (file !== "-") {
    fd = openSync(file, "w+");
    ftruncateSync(fd, FILE_BYTES);
    writeSync(fd, Buffer.alloc(FILE_BYTES), 0, FILE_BYTES, 0);
    fsyncSync(fd);
  }
  const handle = async (text: string): Promise<string> => {
    const req = JSON.parse(text) as { id: number; params: { arguments: { id: string } } };
    if (fd !== undefined) {
      writeSync(fd, record, 0, RECORD_BYTES, offset);
      offset = (offset + RECORD_BYTES) % FILE_BYTES;
      fsyncSync(fd);
    }
    const item = await directGet(agent, upstreamUrl, req.params.arguments.id);
    return JSON.stringify({
      jsonrpc: "2.0",
      id: req.id,
      result: { content: [{ type: "text", text: JSON.stringify(item) }], structuredContent: item },
    });
  };
  const stop = (): void => {
    if (fd !== undefined) closeSync(fd);
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  if (mode === "stdio") {
    const lines = createInterface({ input: process.stdin });
    lines.on("line", (line) => void handle(line).then((out) => process.stdout.write(`${out}\n`)));
    process.stdout.write("ready\n");
    return;
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void handle(Buffer.concat(chunks).toString("utf8")).then((out) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
        res.end(out);
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp\n`);
}

const at = process.argv.indexOf("--hop");
if (at >= 0) {
  const [mode, upstreamUrl, file] = process.argv.slice(at + 1);
  await serveHop(mode as HopMode, upstreamUrl!, file!);
}
