import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCodes, GatewayError, isGatewayError } from "../core/errors.js";
import type { Identity } from "../core/types.js";
import { toBase64 } from "./hash.js";
import type { AuditQuery, AuditReader } from "./reader.js";

/**
 * Compliance endpoints under /audit. The server has already authenticated the caller and checked
 * the audit scope; everything here is read-only. Responses are JSON and never cached.
 *
 *   GET /audit/records?from&to&subject&tool&connector&outcome&callId&type&limit&cursor&order
 *   GET /audit/checkpoint            latest signed checkpoint (Accept: text/plain → the note itself)
 *   GET /audit/proof/<seq>           inclusion proof bundle (verifiable offline)
 *   GET /audit/consistency?from=&to= consistency proof between two tree sizes
 */

export interface AuditRouteContext {
  readonly identity: Identity;
  readonly url: URL;
  readonly body: unknown;
}

export type AuditRouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: AuditRouteContext) => Promise<void>;

const PREFIX = "/audit";
const FILTERS = ["from", "to", "subject", "tool", "connector", "outcome", "callId", "type", "cursor"] as const;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const e = isGatewayError(err) ? err : new GatewayError("INTERNAL", "internal error", { cause: err });
  send(res, ErrorCodes[e.code].http, { error: { code: e.code, message: e.message } });
}

function intParam(url: URL, name: string): number {
  const raw = url.searchParams.get(name);
  if (raw === null || !/^\d{1,15}$/.test(raw)) {
    throw new GatewayError("INVALID_REQUEST", `query parameter ${name} must be a non-negative integer`);
  }
  return Number(raw);
}

function queryOf(url: URL): AuditQuery {
  const q: Record<string, unknown> = {};
  for (const name of FILTERS) {
    const v = url.searchParams.get(name) ?? (name === "callId" ? url.searchParams.get("call_id") : null);
    if (v !== null) q[name] = v;
  }
  if (url.searchParams.has("limit")) q.limit = intParam(url, "limit");
  const order = url.searchParams.get("order");
  if (order !== null) {
    if (order !== "asc" && order !== "desc") throw new GatewayError("INVALID_REQUEST", "order must be asc or desc");
    q.order = order;
  }
  return q as AuditQuery;
}

export function createAuditRoutes(log: AuditReader): AuditRouteHandler {
  return async (req, res, ctx) => {
    try {
      let path = ctx.url.pathname;
      if (path === PREFIX || path.startsWith(`${PREFIX}/`)) path = path.slice(PREFIX.length);
      path = path.replace(/\/+$/, "") || "/";
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        send(res, 405, { error: { code: "INVALID_REQUEST", message: `${req.method ?? "?"} is not allowed on ${ctx.url.pathname}` } });
        return;
      }
      if (path === "/records") {
        const page = log.query(queryOf(ctx.url));
        send(res, 200, page);
        return;
      }
      if (path === "/checkpoint") {
        const cp = log.latestCheckpoint();
        if (!cp) throw new GatewayError("TOOL_NOT_FOUND", "the audit log has no checkpoint yet");
        if ((req.headers.accept ?? "").includes("text/plain")) {
          res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
          res.end(cp.note);
          return;
        }
        send(res, 200, { origin: cp.origin, size: cp.size, root: toBase64(cp.root), time: cp.time, note: cp.note });
        return;
      }
      const proof = /^\/proof\/(\d{1,15})$/.exec(path);
      if (proof) {
        send(res, 200, log.prove(Number(proof[1])));
        return;
      }
      if (path === "/consistency") {
        send(res, 200, log.consistency(intParam(ctx.url, "from"), intParam(ctx.url, "to")));
        return;
      }
      send(res, 404, { error: { code: "TOOL_NOT_FOUND", message: `no audit endpoint ${ctx.url.pathname}` } });
    } catch (err) {
      sendError(res, err);
    }
  };
}
