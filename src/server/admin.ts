import type { IncomingMessage, ServerResponse } from "node:http";
import { renameSync, rmSync } from "node:fs";
import { ConfigError, formatProblem } from "../config/load-file.js";
import { GatewayError, isGatewayError, isPlainObject, safeJson, type Identity } from "../core/index.js";
import { toolHash } from "../gateway/registry.js";
import {
  checkConnectorDefinition,
  connectorFile,
  readIfExists,
  sha256,
  writeAtomic,
  writeSpecFile,
} from "./connector-files.js";
import type { RouteContext, RouteHandler } from "./http.js";
import type { ReloadReport, Runtime } from "./runtime.js";

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(safeJson(body, 2));
}

function statusOf(err: GatewayError): number {
  switch (err.code) {
    case "INVALID_REQUEST":
    case "INVALID_ARGUMENTS":
    case "CONFIG_INVALID":
      return 422;
    case "TOOL_NOT_FOUND":
      return 404;
    default:
      return 500;
  }
}

/**
 * `/admin/*` for identities holding the admin scope: connectors (list, register, replace, remove,
 * upload specs), reloads and tool pinning. Every change is validated exactly as at startup,
 * written atomically, applied by a reload and audited with the actor and a digest of the change.
 */
export function createAdminRoutes(runtime: Runtime): RouteHandler {
  // One change at a time: two admins racing must not interleave file writes and reloads.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  const audit = async (
    identity: Identity,
    action: string,
    detail: Record<string, unknown>,
  ): Promise<void> => {
    await runtime.audit.append({
      type: "admin.change",
      time: new Date().toISOString(),
      identity: {
        subject: identity.subject,
        scopes: identity.scopes,
        ...(identity.clientId ? { clientId: identity.clientId } : {}),
      },
      detail: { action, ...detail },
    });
  };

  const applyOrRevert = async (
    file: string,
    previous: string | undefined,
    why: string,
  ): Promise<ReloadReport> => {
    const report = await runtime.reload(why);
    if (report.ok) return report;
    // The new file made the whole set invalid (e.g. a tool-name collision): put the old one back.
    if (previous === undefined) rmSync(file, { force: true });
    else writeAtomic(file, previous);
    await runtime.reload(`revert: ${why}`);
    throw new ConfigError(report.problems);
  };

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> {
    const parts = ctx.url.pathname.split("/").filter(Boolean).map(decodeURIComponent); // ["admin", ...]
    const [, resource, id, sub] = parts;
    const method = req.method ?? "GET";
    const actor = ctx.identity.subject;

    if (resource === "connectors" && id === undefined && method === "GET") {
      const { detail } = await runtime.readiness();
      return send(res, 200, { connectors: runtime.statuses, health: detail.connectors });
    }
    if (resource === "connectors" && id !== undefined && sub === undefined && method === "PUT") {
      const report = await serial(async () => {
        const text = await checkConnectorDefinition(
          runtime.loaded.connectorsDir,
          id,
          ctx.body,
          runtime.logger,
        );
        const file = connectorFile(runtime.loaded.connectorsDir, id);
        const previous = readIfExists(file);
        // Audit first: a change that cannot be recorded is not made.
        await audit(ctx.identity, previous === undefined ? "connector.register" : "connector.replace", {
          connector: id,
          digest: sha256(text),
          ...(previous !== undefined ? { previousDigest: sha256(previous) } : {}),
        });
        writeAtomic(file, text);
        return applyOrRevert(
          file,
          previous,
          `connector ${id} ${previous === undefined ? "registered" : "replaced"} by ${actor}`,
        );
      });
      return send(res, 200, report);
    }
    if (resource === "connectors" && id !== undefined && sub === undefined && method === "DELETE") {
      const report = await serial(async () => {
        const file = connectorFile(runtime.loaded.connectorsDir, id);
        const previous = readIfExists(file);
        if (previous === undefined) throw new GatewayError("TOOL_NOT_FOUND", `no connector "${id}"`);
        await audit(ctx.identity, "connector.remove", { connector: id, previousDigest: sha256(previous) });
        const parked = `${file}.removed`;
        renameSync(file, parked);
        try {
          return await applyOrRevert(file, previous, `connector ${id} removed by ${actor}`);
        } finally {
          rmSync(parked, { force: true });
        }
      });
      return send(res, 200, report);
    }
    if (resource === "specs" && id !== undefined && method === "PUT") {
      const body = ctx.body;
      if (!isPlainObject(body) || typeof body.content !== "string") {
        throw new GatewayError("INVALID_REQUEST", 'send {"content": "<the spec, WSDL or SQL text>"}');
      }
      const content = body.content;
      const stored = await serial(async () => {
        const { path, digest } = writeSpecFile(runtime.loaded.connectorsDir, id, content);
        await audit(ctx.identity, "spec.upload", { file: path, digest });
        return { path, digest };
      });
      return send(res, 200, { ...stored, note: `refer to it from a connector file as "${stored.path}"` });
    }
    if (resource === "reload" && method === "POST") {
      const force = isPlainObject(ctx.body) && ctx.body.force === true;
      const report = await serial(async () => {
        await audit(ctx.identity, "reload", { force });
        return runtime.reload(`reload requested by ${actor}`, { force, actor });
      });
      return send(res, report.ok ? 200 : 422, report);
    }
    if (resource === "tools" && id === undefined && method === "GET") {
      const withheld = runtime.withheldTools();
      return send(res, 200, {
        tools: runtime.gateway.registry.tools.map((t) => ({
          name: t.def.name,
          connector: t.connector.name,
          hash: t.hash,
        })),
        withheld,
      });
    }
    if (resource === "tools" && id !== undefined && sub === "accept" && method === "POST") {
      const report = await serial(async () => {
        const def = runtime.connectors.flatMap((c) => c.tools()).find((t) => t.name === id);
        if (!def) throw new GatewayError("TOOL_NOT_FOUND", `no tool "${id}"`);
        await audit(ctx.identity, "tool.accept", { tool: id, hash: toolHash(def) });
        return runtime.acceptTool(id, actor);
      });
      return send(res, 200, report);
    }
    throw new GatewayError("TOOL_NOT_FOUND", `no admin endpoint ${method} ${ctx.url.pathname}`);
  }

  return async (req, res, ctx) => {
    try {
      await handle(req, res, ctx);
    } catch (err) {
      if (err instanceof ConfigError) {
        return send(res, 422, { error: "invalid configuration", problems: err.problems.map(formatProblem) });
      }
      if (isGatewayError(err)) {
        if (err.code === "AUDIT_UNAVAILABLE")
          return send(res, 503, { error: `${err.message}; nothing was changed` });
        return send(res, statusOf(err), { error: err.message });
      }
      throw err;
    }
  };
}
