import { randomUUID } from "node:crypto";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { MAX_BATCH_SIZE } from "@modelcontextprotocol/sdk/server/requestBody.js";
import { isJsonContentType } from "@modelcontextprotocol/sdk/shared/mediaType.js";
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  ErrorCode,
  isInitializeRequest,
  RELATED_TASK_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type MessageExtraInfo,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";

// The codes the SDK's transport answers with: -32000 for transport-level refusals, -32001 for an
// unknown session.
const SERVER_ERROR = -32000;
const SESSION_NOT_FOUND = -32001;

export interface NodeStreamableHttpTransportOptions {
  onsessioninitialized?: (sessionId: string) => void | Promise<void>;
  onsessionclosed?: (sessionId: string) => void | Promise<void>;
  /** Interval of the comment frames that keep an idle GET stream open through proxies, in ms (default 25,000). */
  keepAliveMs?: number;
  logger?: Logger;
}

/** One POST carrying requests: answered with one JSON body once every request has its response. */
interface PendingPost {
  res: ServerResponse;
  /** Request id -> its response, in the order of the POST's requests. */
  answers: Map<RequestId, JSONRPCMessage | undefined>;
  left: number;
  done: boolean;
}

/**
 * The server side of MCP Streamable HTTP in JSON-response mode, on node's own request and response
 * objects. It mirrors the SDK's `WebStandardStreamableHTTPServerTransport` (status codes, JSON-RPC
 * error bodies, session and protocol-version checks) without converting every request to a web
 * `Request` and back, which cost 15-20 % of the gateway's CPU per tool call. The body arrives
 * already parsed; the standalone GET stream carries server notifications (tools/list_changed).
 */
export class NodeStreamableHttpTransport implements Transport {
  sessionId?: string;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  private readonly pending = new Map<RequestId, PendingPost>();
  private stream: ServerResponse | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly options: NodeStreamableHttpTransportOptions = {}) {}

  /** True while a request of this session is still being answered. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  async start(): Promise<void> {
    if (this.started) throw new Error("Transport already started");
    this.started = true;
  }

  /** Handles one request to the MCP endpoint; a POST's `body` is its parsed JSON (undefined when empty). */
  async handleRequest(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    authInfo?: AuthInfo,
  ): Promise<void> {
    if (this.closed) return this.reject(res, 404, SESSION_NOT_FOUND, "Session not found");
    switch (req.method) {
      case "POST":
        return this.handlePost(req, res, body, authInfo);
      case "GET":
        return this.handleGet(req, res);
      case "DELETE":
        return this.handleDelete(req, res);
      default:
        return this.reject(res, 405, SERVER_ERROR, "Method not allowed.", {
          allow: "GET, POST, DELETE",
        });
    }
  }

  private async handlePost(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    authInfo: AuthInfo | undefined,
  ): Promise<void> {
    const accept = req.headers.accept;
    if (!accept?.includes("application/json") || !accept.includes("text/event-stream")) {
      return this.reject(
        res,
        406,
        SERVER_ERROR,
        "Not Acceptable: Client must accept both application/json and text/event-stream",
      );
    }
    if (!isJsonContentType(req.headers["content-type"])) {
      return this.reject(
        res,
        415,
        SERVER_ERROR,
        "Unsupported Media Type: Content-Type must be application/json",
      );
    }
    if (body === undefined) return this.reject(res, 400, ErrorCode.ParseError, "Parse error: Invalid JSON");
    if (Array.isArray(body) && body.length > MAX_BATCH_SIZE) {
      return this.reject(
        res,
        400,
        ErrorCode.InvalidRequest,
        `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`,
      );
    }
    const messages: unknown[] = Array.isArray(body) ? body : [body];
    if (!messages.every(isJsonRpcMessage)) {
      return this.reject(res, 400, ErrorCode.ParseError, "Parse error: Invalid JSON-RPC message");
    }
    if (messages.some((m) => "method" in m && m.method === "initialize" && isInitializeRequest(m))) {
      if (this.sessionId !== undefined) {
        return this.reject(res, 400, ErrorCode.InvalidRequest, "Invalid Request: Server already initialized");
      }
      if (messages.length > 1) {
        return this.reject(
          res,
          400,
          ErrorCode.InvalidRequest,
          "Invalid Request: Only one initialization request is allowed",
        );
      }
      this.sessionId = randomUUID();
      await this.options.onsessioninitialized?.(this.sessionId);
    } else if (!this.checkSession(req, res)) {
      return;
    }
    if (this.closed) return this.reject(res, 404, SESSION_NOT_FOUND, "Session not found");

    const extra: MessageExtraInfo = { authInfo, requestInfo: { headers: req.headers } };
    let post: PendingPost | undefined;
    for (const m of messages) {
      if (!isRequest(m)) continue;
      post ??= { res, answers: new Map(), left: 0, done: false };
      post.answers.set(m.id, undefined);
      this.pending.set(m.id, post);
    }
    if (post) {
      post.left = post.answers.size;
      const open = post;
      res.once("close", () => this.abandon(open));
    }
    try {
      for (const m of messages) this.onmessage?.(m, extra);
    } catch (err) {
      if (post) this.forget(post);
      return this.reject(res, 400, ErrorCode.ParseError, "Parse error", {}, String(err));
    }
    // Only notifications and responses: nothing to wait for.
    if (!post) res.writeHead(202).end();
  }

  private handleGet(req: IncomingMessage, res: ServerResponse): void {
    if (!req.headers.accept?.includes("text/event-stream")) {
      return this.reject(res, 406, SERVER_ERROR, "Not Acceptable: Client must accept text/event-stream");
    }
    if (!this.checkSession(req, res)) return;
    if (this.stream) {
      return this.reject(res, 409, SERVER_ERROR, "Conflict: Only one SSE stream is allowed per session");
    }
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      "mcp-session-id": this.sessionId,
    });
    res.flushHeaders();
    this.stream = res;
    const keepAlive = setInterval(() => res.write(": keepalive\n\n"), this.options.keepAliveMs ?? 25_000);
    keepAlive.unref();
    res.once("close", () => {
      clearInterval(keepAlive);
      if (this.stream === res) this.stream = undefined;
    });
  }

  private async handleDelete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.checkSession(req, res)) return;
    try {
      await this.options.onsessionclosed?.(this.sessionId!);
      res.writeHead(200).end();
    } finally {
      await this.close();
    }
  }

  /** Session id and MCP-Protocol-Version checks for everything but initialize; answers the failure. */
  private checkSession(req: IncomingMessage, res: ServerResponse): boolean {
    const id = req.headers["mcp-session-id"];
    const version = req.headers["mcp-protocol-version"];
    if (this.sessionId === undefined) {
      this.reject(res, 400, SERVER_ERROR, "Bad Request: Server not initialized");
    } else if (!id) {
      this.reject(res, 400, SERVER_ERROR, "Bad Request: Mcp-Session-Id header is required");
    } else if (id !== this.sessionId) {
      this.reject(res, 404, SESSION_NOT_FOUND, "Session not found");
    } else if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version as string)) {
      this.reject(
        res,
        400,
        SERVER_ERROR,
        `Bad Request: Unsupported protocol version: ${String(version)} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`,
      );
    } else {
      return true;
    }
    return false;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const isResponse = "result" in message || "error" in message;
    const requestId = isResponse ? message.id : options?.relatedRequestId;
    if (requestId === undefined) {
      if (isResponse) {
        throw new Error(
          "Cannot send a response on a standalone SSE stream unless resuming a previous client request",
        );
      }
      this.stream?.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
      return;
    }
    // A JSON answer has no room for notifications about a request in progress (progress, logging).
    if (!isResponse) return;
    const post = this.pending.get(requestId);
    if (!post) {
      this.options.logger?.debug({ requestId }, "response dropped: its HTTP request is gone");
      return;
    }
    this.pending.delete(requestId);
    post.answers.set(requestId, message);
    if (--post.left === 0) this.answer(post);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stream?.end();
    this.stream = undefined;
    // Requests still running get an error rather than a connection that never answers.
    for (const post of new Set(this.pending.values())) {
      for (const [id, answer] of post.answers) {
        if (answer !== undefined) continue;
        post.answers.set(id, {
          jsonrpc: "2.0",
          id,
          error: { code: ErrorCode.ConnectionClosed, message: "Connection closed: the session ended" },
        });
      }
      this.answer(post);
    }
    this.pending.clear();
    this.onclose?.();
  }

  private answer(post: PendingPost): void {
    post.done = true;
    if (post.res.destroyed) return this.dropped(post);
    const answers = [...post.answers.values()];
    const body = Buffer.from(JSON.stringify(answers.length === 1 ? answers[0] : answers));
    const headers: OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": body.length,
    };
    if (this.sessionId !== undefined) headers["mcp-session-id"] = this.sessionId;
    post.res.writeHead(200, headers).end(body);
  }

  /** The client went away before every request was answered: later responses are dropped. */
  private abandon(post: PendingPost): void {
    if (post.done) return;
    post.done = true;
    this.forget(post);
    this.dropped(post);
  }

  private dropped(post: PendingPost): void {
    this.options.logger?.debug(
      { sessionId: this.sessionId, requestIds: [...post.answers.keys()] },
      "client closed the connection before its answer; answer dropped",
    );
  }

  private forget(post: PendingPost): void {
    post.done = true;
    for (const id of post.answers.keys()) if (this.pending.get(id) === post) this.pending.delete(id);
  }

  private reject(
    res: ServerResponse,
    status: number,
    code: number,
    message: string,
    headers: OutgoingHttpHeaders = {},
    data?: string,
  ): void {
    this.onerror?.(new Error(message));
    const error = data === undefined ? { code, message } : { code, message, data };
    res
      .writeHead(status, { "content-type": "application/json", ...headers })
      .end(JSON.stringify({ jsonrpc: "2.0", error, id: null }));
  }
}

function isRequest(message: JSONRPCMessage): message is JSONRPCRequest {
  return "method" in message && "id" in message;
}

const REQUEST_KEYS = new Set(["jsonrpc", "id", "method", "params"]);
const NOTIFICATION_KEYS = new Set(["jsonrpc", "method", "params"]);
const RESULT_KEYS = new Set(["jsonrpc", "id", "result"]);
const ERROR_KEYS = new Set(["jsonrpc", "id", "error"]);

/**
 * Exactly as strict as the SDK's `JSONRPCMessageSchema.parse` (a request, notification, result or
 * error; unknown top-level keys refused; ids strings or safe integers; `_meta` checked), checked by
 * hand because the zod parse showed in the gateway's profile. test/server/streamable-http.test.ts
 * holds the two side by side.
 */
export function isJsonRpcMessage(value: unknown): value is JSONRPCMessage {
  if (!isObject(value) || value.jsonrpc !== "2.0") return false;
  if (value.method !== undefined) {
    if (typeof value.method !== "string") return false;
    const params = value.params;
    if (params !== undefined && !(isObject(params) && isMeta(params._meta))) return false;
    return value.id === undefined
      ? onlyKeys(value, NOTIFICATION_KEYS)
      : isId(value.id) && onlyKeys(value, REQUEST_KEYS);
  }
  if (value.result !== undefined) {
    const result = value.result;
    return isId(value.id) && isObject(result) && isMeta(result._meta) && onlyKeys(value, RESULT_KEYS);
  }
  const error = value.error;
  return (
    isObject(error) &&
    Number.isSafeInteger(error.code) &&
    typeof error.message === "string" &&
    (value.id === undefined || isId(value.id)) &&
    onlyKeys(value, ERROR_KEYS)
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is RequestId {
  return typeof value === "string" || Number.isSafeInteger(value);
}

function isMeta(meta: unknown): boolean {
  if (meta === undefined) return true;
  if (!isObject(meta)) return false;
  const token = meta.progressToken;
  const task = meta[RELATED_TASK_META_KEY];
  return (
    (token === undefined || isId(token)) &&
    (task === undefined || (isObject(task) && typeof task.taskId === "string"))
  );
}

function onlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
