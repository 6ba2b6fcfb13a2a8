import { createServer, connect, type Server, type Socket } from "node:net";
import { expect } from "vitest";
import { type Connector, type InvocationContext, type ToolResult } from "../../../src/core/index.js";
import { sqlFactory } from "../../../src/connectors/sql/index.js";
import { testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";

export async function createSql(raw: unknown, baseDir = process.cwd()): Promise<Connector> {
  const config = sqlFactory.configSchema.parse(raw);
  return sqlFactory.create(config, { baseDir, logger: testLogger });
}

export function tool(connector: Connector, operation: string) {
  const t = connector.tools().find((d) => d.operation === operation);
  if (!t) throw new Error(`no tool ${operation} in ${connector.name}`);
  return t;
}

export function call(
  connector: Connector,
  operation: string,
  args: Record<string, unknown> = {},
  ctx: Partial<InvocationContext> = {},
): Promise<ToolResult> {
  return connector.invoke({ tool: tool(connector, operation), arguments: args }, testContext(ctx));
}

export interface RowsResult {
  rows: Record<string, unknown>[];
  rowCount: number;
  truncated: boolean;
  columns?: { name: string; type?: string }[];
}

export async function rows(
  connector: Connector,
  operation: string,
  args: Record<string, unknown> = {},
  ctx: Partial<InvocationContext> = {},
): Promise<RowsResult> {
  const result = await call(connector, operation, args, ctx);
  expect(result.isError ?? false).toBe(false);
  return result.structuredContent as unknown as RowsResult;
}

/** The GatewayError a call rejects with (fails the test if it resolves). */
export { rejection as failure } from "../../helpers/errors.js";

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP relay in front of a real database, so a test can make the database "go away" and
 * "come back" on the same address without touching the shared service.
 */
export class TcpRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  /** Stops listening and cuts every open connection, as a database crash would. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Rejects after `ms` so a test can tell "still running" from "finished". */
export function settledWithin<T>(promise: Promise<T>, ms: number): Promise<boolean> {
  return Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
}

export async function waitUntil(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting until ${what}`);
}
