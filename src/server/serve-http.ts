import type { Logger } from "pino";
import type { Identity } from "../core/index.js";
import { isLoopbackHost, startHttpServer, type RunningHttpServer } from "./http.js";
import { routesFor } from "./routes.js";
import type { Runtime } from "./runtime.js";

/** Serves a runtime over Streamable HTTP with every surface the config enables. */
export async function startHttp(
  runtime: Runtime,
  logger: Logger,
  overrides: { port?: number } = {},
): Promise<RunningHttpServer> {
  const { config } = runtime.loaded;
  const http = config.transports.http;
  let localIdentity: Identity | undefined;
  if (config.identity.local?.overHttp) {
    if (!isLoopbackHost(http.host)) {
      throw new Error(
        `identity.local.overHttp is only allowed when transports.http.host is a loopback address (it is ${http.host}); configure identity.jwt for remote callers`,
      );
    }
    localIdentity = runtime.localIdentity;
    logger.warn(
      { subject: localIdentity?.subject },
      "HTTP requests without a token act as the local identity (development only)",
    );
  }
  if (!runtime.authenticator && !localIdentity) {
    throw new Error(
      "HTTP needs an identity: configure identity.jwt (bearer tokens), or identity.local with overHttp: true for loopback development",
    );
  }
  return startHttpServer({
    gateway: runtime.gateway,
    config: overrides.port === undefined ? http : { ...http, port: overrides.port },
    serverName: config.server.name,
    logger,
    ...(runtime.authenticator ? { authenticator: runtime.authenticator } : {}),
    ...(config.identity.jwt ? { issuer: config.identity.jwt.issuer } : {}),
    ...(localIdentity ? { localIdentity } : {}),
    routes: routesFor(runtime),
    audit: runtime.audit,
    ready: () => runtime.readiness(),
    ...(config.observability.metrics ? { metrics: () => runtime.metrics.render() } : {}),
    ...(config.observability.metricsScope ? { metricsScope: config.observability.metricsScope } : {}),
  });
}
