import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCodes, GatewayError, isPlainObject, toGatewayError, type Identity } from "../core/index.js";
import type { ApprovalStatus, ApprovalStore } from "./approvals.js";

/** Same shape as the server's route handlers (src/server/http.ts RouteHandler), kept structural. */
export type ApprovalsHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  ctx: { identity: Identity; url: URL; body: unknown },
) => Promise<void>;

const STATUSES: readonly ApprovalStatus[] = ["pending", "approved", "denied", "expired", "consumed"];
const ID = /^apr_[A-Za-z0-9_-]{1,64}$/;

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    })
    .end(JSON.stringify(body));
}

function fail(res: ServerResponse, err: GatewayError, headers: Record<string, string> = {}): void {
  send(res, ErrorCodes[err.code].http, { error: err.code, message: err.message }, headers);
}

function notAllowed(res: ServerResponse, method: string, allow: string): void {
  send(
    res,
    405,
    { error: "METHOD_NOT_ALLOWED", message: `${method} is not allowed here; use ${allow}` },
    { allow },
  );
}

function noteFrom(body: unknown): string | undefined {
  if (body === undefined || body === null || body === "") return undefined;
  if (!isPlainObject(body))
    throw new GatewayError(
      "INVALID_REQUEST",
      'the body must be a JSON object such as {"note": "checked with finance"}',
    );
  for (const key of Object.keys(body)) {
    if (key !== "note")
      throw new GatewayError(
        "INVALID_REQUEST",
        `unknown field ${JSON.stringify(key.slice(0, 40))} (accepted: note)`,
      );
  }
  if (body.note !== undefined && typeof body.note !== "string")
    throw new GatewayError("INVALID_REQUEST", "note must be a string");
  return body.note;
}

/**
 * `/admin/approvals` (mount under that prefix, guarded by the approver scope):
 *   GET  /admin/approvals?status=pending&limit=50   list, newest first
 *   GET  /admin/approvals/<id>                      one request
 *   POST /admin/approvals/<id>/approve  {"note"?}   approve (never your own request)
 *   POST /admin/approvals/<id>/deny     {"note"?}   deny
 */
export function createApprovalsHandler(store: ApprovalStore, prefix = "/admin/approvals"): ApprovalsHandler {
  return async (req, res, ctx) => {
    try {
      const rest = ctx.url.pathname.startsWith(prefix)
        ? ctx.url.pathname.slice(prefix.length)
        : ctx.url.pathname;
      const parts = rest.split("/").filter((p) => p !== "");
      const method = req.method ?? "GET";
      if (parts.length === 0) {
        if (method !== "GET") return notAllowed(res, method, "GET");
        const status = ctx.url.searchParams.get("status") ?? undefined;
        if (status !== undefined && status !== "all" && !STATUSES.includes(status as ApprovalStatus)) {
          throw new GatewayError(
            "INVALID_REQUEST",
            `status must be one of ${[...STATUSES, "all"].join(", ")}`,
          );
        }
        const limitText = ctx.url.searchParams.get("limit");
        const limit = limitText === null ? undefined : Number(limitText);
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) {
          throw new GatewayError("INVALID_REQUEST", "limit must be an integer from 1 to 1000");
        }
        const approvals = store.list({
          ...(status && status !== "all" ? { status: status as ApprovalStatus } : {}),
          ...(limit ? { limit } : {}),
        });
        return send(res, 200, { approvals });
      }
      const id = parts[0]!;
      if (!ID.test(id) || parts.length > 2)
        throw new GatewayError("INVALID_REQUEST", "expected /admin/approvals/<apr_…id>[/approve|/deny]");
      if (parts.length === 1) {
        if (method !== "GET") return notAllowed(res, method, "GET");
        const record = store.get(id);
        if (!record) return send(res, 404, { error: "NOT_FOUND", message: `no approval with id ${id}` });
        return send(res, 200, record);
      }
      const action = parts[1];
      if (action !== "approve" && action !== "deny")
        throw new GatewayError(
          "INVALID_REQUEST",
          `unknown action ${JSON.stringify(action?.slice(0, 20))}; use approve or deny`,
        );
      if (method !== "POST") return notAllowed(res, method, "POST");
      const record = await store.decide(id, action, ctx.identity, noteFrom(ctx.body));
      return send(res, 200, record);
    } catch (err) {
      const e = toGatewayError(err);
      if (e.details?.reason === "not_found")
        return send(res, 404, { error: "NOT_FOUND", message: e.message });
      return fail(res, e);
    }
  };
}
