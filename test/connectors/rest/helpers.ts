import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { restFactory, type RestConnector } from "../../../src/connectors/rest/index.js";
import type { ToolResult } from "../../../src/core/index.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";

export interface Recorded {
  method: string;
  /** Path and query exactly as received. */
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

export interface TestServer {
  url: string;
  port: number;
  requests: Recorded[];
  server: Server;
  close(): Promise<void>;
}

/** A real node:http server on port 0 that records every request it receives. */
export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      Promise.resolve(handler(req, res, body)).catch(() => res.destroy());
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

/** A temp directory for spec files, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-rest-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeSpec(dir: string, name: string, doc: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof doc === "string" ? doc : JSON.stringify(doc, null, 2));
  return file;
}

export async function makeConnector(config: Record<string, unknown>, baseDir = "/"): Promise<RestConnector> {
  const parsed = restFactory.configSchema.parse({ kind: "rest", name: "t", ...config });
  return restFactory.create(parsed, { baseDir, logger: testLogger });
}

export function call(
  connector: RestConnector,
  tool: string,
  args: Record<string, unknown>,
  ctx: Parameters<typeof testContext>[0] = {},
): Promise<ToolResult> {
  return connector.invoke({ tool: findTool(connector, tool), arguments: args }, testContext(ctx));
}

/** The rejection of a call, asserting it was one. */
export async function failure(
  promise: Promise<unknown>,
): Promise<{ code: string; message: string; details?: unknown }> {
  try {
    await promise;
  } catch (err) {
    return err as { code: string; message: string; details?: unknown };
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** Minimal OpenAPI 3.0 document around the given paths. */
export function oas30(paths: Record<string, unknown>, components: Record<string, unknown> = {}) {
  return {
    openapi: "3.0.3",
    info: { title: "test", version: "1" },
    servers: [{ url: "http://127.0.0.1:1/api" }],
    paths,
    components,
  };
}

export const okJson = (schema: unknown = { type: "object" }) => ({
  "200": { description: "ok", content: { "application/json": { schema } } },
});
