import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { HttpConfig } from "../config/schema.js";
import type { GatewayError } from "../core/index.js";
import {
  isGatewayError,
  safeJson,
  type AuditSink,
  type Authenticator,
  type Identity,
} from "../core/index.js";
import type { Gateway } from "../gateway/gateway.js";
import { createMcpSession } from "./mcp-server.js";
import { NodeStreamableHttpTransport } from "./streamable-http.js";

export interface RouteContext {
  identity: Identity;
  url: URL;
  body: unknown;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => Promise<void>;

/** An HTTP surface beside /mcp (admin, audit), open only to identities holding `scope`. */
export interface Route {
  prefix: string;
  scope: string;
  handler: RouteHandler;
}

export interface HttpServerOptions {
  gateway: Gateway;
  config: HttpConfig;
  serverName: string;
  logger: Logger;
  /** Verifies bearer tokens; absent only when `localIdentity` serves loopback development. */
  authenticator?: Authenticator;
  /** The token issuer, advertised as the authorization server in the protected-resource metadata. */
  issuer?: string;
  /** Identity for requests without a token (loopback development only). */
  localIdentity?: Identity;
  routes?: readonly Route[];
  /** Readiness: connectors' and the audit log's health. */
  ready?: () => Promise<{ ready: boolean; detail: Record<string, unknown> }>;
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Records refused admin/audit requests (an identity without the route's scope). */
  audit?: AuditSink;
  /** When set, /metrics needs a bearer token holding this scope. */
  metricsScope?: string;
}

interface Session {
  transport: NodeStreamableHttpTransport;
  subject: string;
  issuer: string | undefined;
  lastUsed: number;
  dispose: () => void;
}

export interface RunningHttpServer {
  url: URL;
  server: HttpServer;
  sessionCount(): number;
  /** Stops accepting connections, waits (up to graceMs) for responses in progress, ends every session. */
  close(graceMs?: number): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith("127.");
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly jsonRpcCode = -32000,
  ) {
    super(message);
  }
}

/**
 * Streamable HTTP at `config.path`, plus health, readiness, metrics, OAuth protected-resource
 * metadata and the scope-guarded admin/audit routes. Every request is authenticated; an MCP
 * session stays bound to the identity that opened it.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { config, logger, gateway } = options;
  const sessions = new Map<string, Session>();
  let activePosts = 0;
  let postsDone: (() => void) | undefined;
  let origin = "";
  let allowedHosts = new Set<string>();
  let resourceUrl = "";
  let metadataUrl = "";

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return sendError(res, err);
      logger.error({ err }, "http request failed");
      sendError(res, new HttpError(500, "internal error"));
    });
  });
  // Slow-loris protection: a client must send its headers and body promptly.
  server.headersTimeout = 15_000;
  server.requestTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", origin);
    checkHost(req);
    if (url.pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (url.pathname === "/readyz") {
      const state = options.ready ? await options.ready() : { ready: true, detail: {} };
      return sendJson(res, state.ready ? 200 : 503, {
        status: state.ready ? "ready" : "not ready",
        ...state.detail,
      });
    }
    if (url.pathname === "/metrics" && options.metrics) {
      if (options.metricsScope !== undefined) requireScope(await authenticate(req), options.metricsScope);
      const m = await options.metrics();
      res.writeHead(200, { "content-type": m.contentType });
      res.end(m.body);
      return;
    }
    if (url.pathname.startsWith("/.well-known/oauth-protected-resource"))
      return protectedResourceMetadata(res);
    if (url.pathname === config.path) return handleMcp(req, res);
    const route = options.routes?.find(
      (r) => url.pathname === r.prefix || url.pathname.startsWith(`${r.prefix}/`),
    );
    if (route) {
      checkOrigin(req);
      const identity = await authenticate(req);
      if (!identity.scopes.includes(route.scope)) {
        // Probing the admin surface without the scope is itself worth a record.
        await options.audit
          ?.append({
            type: "admin.refused",
            time: new Date().toISOString(),
            identity: {
              subject: identity.subject,
              scopes: identity.scopes,
              ...(identity.clientId ? { clientId: identity.clientId } : {}),
            },
            decision: { allowed: false, code: "FORBIDDEN", reason: `needs the "${route.scope}" scope` },
            detail: { method: req.method ?? "", path: url.pathname.slice(0, 256) },
          })
          .catch((err: unknown) =>
            logger.error({ err }, "audit record of a refused admin request could not be written"),
          );
      }
      requireScope(identity, route.scope);
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readJsonBody(req);
      return route.handler(req, res, { identity, url, body });
    }
    throw new HttpError(404, "not found");
  }

  function requireScope(identity: Identity, scope: string): void {
    if (identity.scopes.includes(scope)) return;
    throw new HttpError(403, `this endpoint needs the "${scope}" scope`, {
      "www-authenticate": `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${metadataUrl}"`,
    });
  }

  async function handleMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "POST") {
      // Counted until the response is finished, so shutdown waits for results to be delivered.
      activePosts++;
      res.once("close", () => {
        activePosts--;
        if (activePosts === 0) postsDone?.();
      });
    }
    checkOrigin(req);
    const identity = await authenticate(req);
    const sessionId = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? await readJsonBody(req) : undefined;
    // The transport passes authInfo to handlers; the token itself is not kept anywhere.
    const authInfo = {
      token: "",
      clientId: identity.clientId ?? "",
      scopes: [...identity.scopes],
      extra: { identity },
    };

    if (typeof sessionId === "string") {
      const session = sessions.get(sessionId);
      // Another identity presenting this session id learns nothing: same answer as an unknown id.
      if (!session || session.subject !== identity.subject || session.issuer !== identity.issuer) {
        throw new HttpError(
          404,
          "session not found: it ended or never existed; initialize a new session",
          {},
          -32001,
        );
      }
      session.lastUsed = Date.now();
      await session.transport.handleRequest(req, res, body, authInfo);
      return;
    }
    if (req.method !== "POST" || !isInitialize(body)) {
      throw new HttpError(400, "missing Mcp-Session-Id header: send initialize first", {}, -32000);
    }
    if (sessions.size >= config.maxSessions) {
      throw new HttpError(503, "too many open sessions; retry later", { "retry-after": "5" });
    }
    const { server: mcp, dispose } = createMcpSession({
      gateway,
      serverName: options.serverName,
      logger,
      identityOf: (auth) => (auth?.extra?.identity as Identity | undefined) ?? identity,
    });
    // Every answer to a POST is one JSON-RPC response (the gateway sends nothing else while a
    // request runs: list_changed goes over the GET stream), so a plain JSON body does; an SSE
    // stream per POST cost more CPU than the rest of the MCP layer (BENCHMARKS.md).
    const transport: NodeStreamableHttpTransport = new NodeStreamableHttpTransport({
      logger,
      onsessioninitialized: (id) => {
        sessions.set(id, {
          transport,
          subject: identity.subject,
          issuer: identity.issuer,
          lastUsed: Date.now(),
          dispose,
        });
        logger.info({ sessionId: id, subject: identity.subject }, "session opened");
      },
      onsessionclosed: (id) => endSession(id, "closed by client"),
    });
    transport.onclose = () => {
      if (transport.sessionId) endSession(transport.sessionId, "transport closed");
    };
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body, authInfo);
    // An initialize the transport refused (malformed params) opened no session: release it.
    if (transport.sessionId === undefined) {
      dispose();
      await mcp.close();
    }
  }

  function endSession(id: string, why: string): void {
    const session = sessions.get(id);
    if (!session) return;
    sessions.delete(id);
    session.dispose();
    session.transport.close().catch(() => undefined);
    logger.info({ sessionId: id, why }, "session ended");
  }

  async function authenticate(req: IncomingMessage): Promise<Identity> {
    const header = req.headers.authorization;
    if (header === undefined) {
      if (options.localIdentity) return options.localIdentity;
      throw unauthorized("missing bearer token: send Authorization: Bearer <access token>", false);
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !options.authenticator) {
      throw unauthorized(
        options.authenticator
          ? "malformed Authorization header: expected 'Bearer <token>'"
          : "this gateway does not accept bearer tokens (identity.jwt is not configured)",
        true,
      );
    }
    try {
      return await options.authenticator.verify(match[1]!);
    } catch (err) {
      if (isGatewayError(err) && err.code === "FORBIDDEN") {
        throw new HttpError(403, err.message, {
          "www-authenticate": `Bearer error="insufficient_scope", resource_metadata="${metadataUrl}"`,
        });
      }
      const message = isGatewayError(err) ? err.message : "invalid token";
      if (!isGatewayError(err)) logger.warn({ err }, "token verification failed unexpectedly");
      throw unauthorized(message, true);
    }
  }

  function unauthorized(message: string, invalid: boolean): HttpError {
    const description = message.replace(/["\\\r\n]/g, "'");
    return new HttpError(401, message, {
      "www-authenticate": `Bearer resource_metadata="${metadataUrl}"${invalid ? `, error="invalid_token", error_description="${description}"` : ""}`,
    });
  }

  function protectedResourceMetadata(res: ServerResponse): void {
    sendJson(res, 200, {
      resource: resourceUrl,
      ...(options.issuer ? { authorization_servers: [options.issuer] } : {}),
      bearer_methods_supported: ["header"],
      resource_name: options.serverName,
    });
  }

  function checkOrigin(req: IncomingMessage): void {
    const value = req.headers.origin;
    if (value === undefined) return;
    if (config.allowedOrigins.includes(value)) return;
    let host: string | undefined;
    try {
      host = new URL(value).hostname;
    } catch {
      host = undefined;
    }
    // A browser page on the same machine is fine when we only listen there; anything else is DNS rebinding.
    if (host !== undefined && isLoopbackHost(config.host) && isLoopbackHost(host)) return;
    throw new HttpError(
      403,
      `origin ${JSON.stringify(value)} is not allowed (add it to transports.http.allowedOrigins)`,
    );
  }

  function checkHost(req: IncomingMessage): void {
    const host = req.headers.host?.toLowerCase();
    if (host !== undefined && allowedHosts.has(host)) return;
    throw new HttpError(
      403,
      `host ${JSON.stringify(host ?? "")} is not allowed (add it to transports.http.allowedHosts)`,
    );
  }

  async function readJsonBody(req: IncomingMessage): Promise<unknown> {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > config.maxBodyBytes) {
      req.resume();
      throw new HttpError(
        413,
        `request body of ${declared} bytes is over the limit of ${config.maxBodyBytes}`,
        { connection: "close" },
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const overLimit = (): HttpError =>
      new HttpError(413, `request body is over the limit of ${config.maxBodyBytes} bytes`, {
        connection: "close",
      });
    if (declared > 0 && req.readableLength >= declared) {
      // The whole body is buffered already (a small POST arrives in one segment, parsed before this
      // handler resumed), and within the limit (checked above): read now, not a stream turn later.
      const chunk = req.read() as Buffer | null;
      if (chunk !== null) {
        size = chunk.length;
        chunks.push(chunk);
      }
    } else {
      await readStreamed();
    }
    if (size === 0) return undefined;
    try {
      return JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      throw new HttpError(400, "request body is not valid JSON", {}, -32700);
    }

    // Listeners rather than `for await`: the async iterator costs a promise and a turn per chunk,
    // ~35 µs of every tool call's critical path.
    function readStreamed(): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const done = (err?: Error): void => {
          req.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
          if (err) reject(err);
          else resolve();
        };
        const onData = (chunk: Buffer): void => {
          size += chunk.length;
          if (size <= config.maxBodyBytes) {
            chunks.push(chunk);
            return;
          }
          // The rest is not read: the answer closes the connection.
          req.pause();
          done(overLimit());
        };
        const onEnd = (): void => done();
        // A client that goes away mid-body is not a server fault: a 400 nobody reads, no error log.
        const onGone = (): void =>
          done(new HttpError(400, "the client closed the connection before its request body ended"));
        req.on("data", onData).on("end", onEnd).on("error", onGone).on("close", onGone);
      });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === "IPv6" ? `[${address.address}]` : address.address;
  origin = `http://${hostForUrl}:${address.port}`;
  allowedHosts = new Set(
    (config.allowedHosts.length > 0
      ? config.allowedHosts
      : [config.host, hostForUrl, "localhost", "127.0.0.1", "[::1]"].map((h) => `${h}:${address.port}`)
    ).map((h) => h.toLowerCase()),
  );
  resourceUrl = config.publicUrl ?? `${origin}${config.path}`;
  const resource = new URL(resourceUrl);
  metadataUrl = `${resource.origin}/.well-known/oauth-protected-resource${resource.pathname === "/" ? "" : resource.pathname}`;

  const sweeper = setInterval(
    () => {
      const cutoff = Date.now() - config.sessionIdleTimeoutMs;
      // A session whose call is still running is not idle, however long that call takes.
      for (const [id, s] of sessions) {
        if (s.transport.busy) s.lastUsed = Date.now();
        else if (s.lastUsed < cutoff) endSession(id, "idle timeout");
      }
    },
    Math.min(60_000, config.sessionIdleTimeoutMs),
  ).unref();

  return {
    url: new URL(`${origin}${config.path}`),
    server,
    sessionCount: () => sessions.size,
    async close(graceMs = 5_000) {
      clearInterval(sweeper);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (activePosts > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (postsDone = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
        ]);
        clearTimeout(timer);
      }
      for (const id of [...sessions.keys()]) endSession(id, "server shutting down");
      // Clients hold keep-alive sockets and standalone SSE streams open; calls have drained by now.
      server.closeAllConnections();
      await closed;
    },
  };
}

function isInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some(
    (m) => typeof m === "object" && m !== null && (m as { method?: unknown }).method === "initialize",
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(safeJson(body));
}

function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(err.status, { "content-type": "application/json", ...err.headers });
  res.end(safeJson({ jsonrpc: "2.0", error: { code: err.jsonRpcCode, message: err.message }, id: null }));
}

/** Maps a GatewayError raised inside a route handler to its HTTP status. */
export function gatewayErrorStatus(err: GatewayError): number {
  switch (err.code) {
    case "INVALID_ARGUMENTS":
    case "INVALID_REQUEST":
    case "CONFIG_INVALID":
      return 400;
    case "TOOL_NOT_FOUND":
      return 404;
    case "FORBIDDEN":
      return 403;
    default:
      return 500;
  }
}
