import { isDeepStrictEqual } from "node:util";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { Protocol } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import { isGatewayError, type Identity } from "../core/index.js";
import type { Gateway } from "../gateway/gateway.js";

export const SERVER_VERSION = "0.1.0";

export interface SessionOptions {
  gateway: Gateway;
  serverName: string;
  logger: Logger;
  /**
   * The identity of the request being handled. Over stdio it is fixed; over HTTP every request
   * carries its own verified token, bound to the identity that opened the session.
   */
  identityOf: (authInfo: { extra?: Record<string, unknown> } | undefined) => Identity;
}

let sharedValidator: AjvJsonSchemaValidator | undefined;

const INSTRUCTIONS =
  "Portcullis exposes enterprise systems as tools named <connector>__<operation>. You only see the tools your identity is granted. Errors start with a code (e.g. UPSTREAM_TIMEOUT, DENIED_RATE_LIMIT, APPROVAL_REQUIRED) followed by what to do next.";

/**
 * One MCP session: the SDK's low-level Server, since the tool set is dynamic and differs per
 * caller. Tool-list changes that alter what this session's identity sees are announced with
 * notifications/tools/list_changed.
 */
export function createMcpSession(options: SessionOptions): { server: Server; dispose: () => void } {
  const { gateway } = options;
  const server = new Server(
    { name: options.serverName, version: SERVER_VERSION },
    {
      capabilities: { tools: { listChanged: true } },
      instructions: INSTRUCTIONS,
      // Otherwise every session builds its own Ajv (with formats) for elicitation, which we never send.
      jsonSchemaValidator: (sharedValidator ??= new AjvJsonSchemaValidator()),
    },
  );
  // Over HTTP each request re-verifies its token; the session's own identity is the fallback.
  let lastIdentity: Identity | undefined = options.identityOf(undefined);

  // Re-verifying a bearer token yields an equal but new Identity on every request; handing on the
  // one already seen keeps the per-identity caches (visible tools, scope decisions) warm across
  // the pages of a listing and the calls of a session. A refreshed token differs and replaces it.
  const identityOf = (authInfo: { extra?: Record<string, unknown> } | undefined): Identity => {
    const identity = options.identityOf(authInfo);
    if (
      lastIdentity !== undefined &&
      identity !== lastIdentity &&
      isDeepStrictEqual(identity, lastIdentity)
    ) {
      return lastIdentity;
    }
    lastIdentity = identity;
    return identity;
  };

  server.setRequestHandler(ListToolsRequestSchema, (request, extra) => {
    const identity = identityOf(extra.authInfo);
    try {
      return gateway.listTools(identity, request.params?.cursor);
    } catch (err) {
      throw asMcpError(err);
    }
  });

  // Protocol's registration, not Server's: Server wraps tools/call to parse the request a second
  // time and to re-parse (copy) the result against CallToolResultSchema. The request is parsed
  // once here and its arguments by the gateway; the result is ours, built to that schema (the
  // SDK client checks it in our tests). No task support is advertised, so nothing is lost.
  Protocol.prototype.setRequestHandler.call(
    server,
    CallToolRequestSchema,
    async (request, extra): Promise<CallToolResult> => {
      const identity = identityOf(extra.authInfo);
      const traceparent = extra.requestInfo?.headers?.traceparent;
      try {
        return await gateway.callTool(identity, request.params.name, request.params.arguments, {
          signal: extra.signal,
          ...(typeof traceparent === "string" ? { traceparent } : {}),
        });
      } catch (err) {
        throw asMcpError(err);
      }
    },
  );

  const unsubscribe = gateway.onRegistryChange((previous, next) => {
    if (!lastIdentity) return;
    const before = gateway.visibleFingerprint(lastIdentity, previous);
    const after = gateway.visibleFingerprint(lastIdentity, next);
    if (before.length === after.length && before.every((n, i) => n === after[i])) return;
    server
      .sendToolListChanged()
      .catch((err: unknown) => options.logger.debug({ err }, "list_changed not delivered"));
  });

  return { server, dispose: unsubscribe };
}

/** Protocol-level errors: unknown/hidden tools and bad cursors are -32602, as the MCP spec says. */
function asMcpError(err: unknown): McpError {
  if (err instanceof McpError) return err;
  if (isGatewayError(err) && (err.code === "TOOL_NOT_FOUND" || err.code === "INVALID_REQUEST")) {
    return new McpError(ErrorCode.InvalidParams, err.message);
  }
  return new McpError(ErrorCode.InternalError, "internal error");
}
