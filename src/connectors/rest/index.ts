import type { ConnectorDeps, ConnectorFactory } from "../../core/index.js";
import { createAuth } from "./auth.js";
import { DEFAULTS, restConfigSchema, type RestConfig } from "./config.js";
import { RestConnector } from "./connector.js";
import { HttpTransport } from "./http.js";
import { SecretRedactor } from "./redact.js";
import { loadRestSpec } from "./spec-process.js";

export { restConfigSchema, type RestConfig } from "./config.js";
export { RestConnector } from "./connector.js";

/**
 * OpenAPI 3.0/3.1 and Swagger 2.0 operations as tools. Loading is all-or-nothing: a spec that
 * does not validate, a base URL that cannot be determined or an override naming no operation
 * stops the connector with a message naming the file and the problem. Large specs load in a
 * short-lived child process (spec-process.ts).
 */
export async function createRestConnector(config: RestConfig, deps: ConnectorDeps): Promise<RestConnector> {
  const redactor = new SecretRedactor();
  const transport = new HttpTransport({
    connectTimeoutMs: config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    maxSockets: config.maxSockets ?? DEFAULTS.maxSockets,
    maxResponseBytes: config.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
  });
  const auth = createAuth(config.name, config.auth, transport, redactor);
  const { name, spec, baseUrl, tools, include, exclude, validateResponses } = config;
  let loaded: Awaited<ReturnType<typeof loadRestSpec>>;
  try {
    loaded = await loadRestSpec(
      {
        config: { name, spec, baseUrl, tools, include, exclude, validateResponses },
        baseDir: deps.baseDir,
        reserved: auth.reserved,
      },
      { logger: deps.logger },
    );
  } catch (err) {
    transport.destroy();
    throw err;
  }
  const { prepared, where } = loaded;
  deps.logger.info(
    {
      connector: config.name,
      spec: prepared.shownAs,
      specVersion: prepared.version,
      tools: prepared.tools.length,
      of: prepared.operations,
      where,
    },
    "rest connector loaded",
  );
  return new RestConnector({
    config,
    baseUrl: new URL(prepared.baseUrl),
    tools: prepared.tools,
    transport,
    auth,
    redactor,
    logger: deps.logger,
  });
}

export const restFactory = {
  kind: "rest",
  configSchema: restConfigSchema,
  create: createRestConnector,
} satisfies ConnectorFactory<RestConfig>;
