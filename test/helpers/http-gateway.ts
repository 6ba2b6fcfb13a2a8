import type { Logger } from "pino";
import { loadGatewayConfig } from "../../src/config/load.js";
import { startHttpServer, type HttpServerOptions, type RunningHttpServer } from "../../src/server/http.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import type { Deployment } from "./deployment.js";
import { testLogger } from "./logger.js";

/**
 * A deployment's gateway served over HTTP in this process, as `serve --http` does: its runtime,
 * then the HTTP server with the deployment's transport settings and local identity.
 */
export async function startHttpGateway(
  deployment: Deployment,
  options: { logger?: Logger; extra?: Partial<HttpServerOptions> } = {},
): Promise<{ runtime: Runtime; http: RunningHttpServer }> {
  const loaded = loadGatewayConfig(deployment.configPath);
  const runtime = await startRuntime(loaded, testLogger);
  const http = await startHttpServer({
    gateway: runtime.gateway,
    config: loaded.config.transports.http,
    serverName: "portcullis",
    logger: options.logger ?? testLogger,
    ...(runtime.localIdentity ? { localIdentity: runtime.localIdentity } : {}),
    ...options.extra,
  });
  return { runtime, http };
}
