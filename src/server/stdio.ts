import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Logger } from "pino";
import { GatewayError, type Identity } from "../core/index.js";
import type { Runtime } from "./runtime.js";
import { createMcpSession } from "./mcp-server.js";

/**
 * The stdio caller's identity: a JWT from the configured environment variable (verified exactly
 * like an HTTP bearer token), else the configured local identity. Neither → refuse to start.
 */
export async function stdioIdentity(
  runtime: Runtime,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Identity> {
  const { identity } = runtime.loaded.config;
  if (identity.tokenEnv) {
    const token = env[identity.tokenEnv];
    if (token) {
      if (!runtime.authenticator) {
        throw new GatewayError(
          "CONFIG_INVALID",
          `identity.tokenEnv is set but identity.jwt is not: configure identity.jwt to verify the token in ${identity.tokenEnv}`,
        );
      }
      return runtime.authenticator.verify(token);
    }
    if (!runtime.localIdentity) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `no identity for stdio: environment variable ${identity.tokenEnv} is empty; export a JWT in it`,
      );
    }
  }
  if (runtime.localIdentity) return runtime.localIdentity;
  throw new GatewayError(
    "CONFIG_INVALID",
    'no identity for stdio: set identity.local ({"subject": "you@example.com", "scopes": ["support-agent"]}) for single-user desktop use, or identity.tokenEnv + identity.jwt to verify a token from the environment',
  );
}

export async function serveStdio(
  runtime: Runtime,
  identity: Identity,
  logger: Logger,
): Promise<{ closed: Promise<void>; close(): Promise<void> }> {
  const { server, dispose } = createMcpSession({
    gateway: runtime.gateway,
    serverName: runtime.loaded.config.server.name,
    logger,
    identityOf: () => identity,
  });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => {
      dispose();
      resolve();
    };
  });
  await server.connect(transport);
  logger.info({ subject: identity.subject, scopes: identity.scopes }, "serving MCP over stdio");
  return { closed, close: () => server.close() };
}
