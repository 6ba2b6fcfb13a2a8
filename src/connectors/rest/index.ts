import { GatewayError, isPlainObject, type ConnectorDeps, type ConnectorFactory } from "../../core/index.js";
import { createAuth } from "./auth.js";
import { DEFAULTS, restConfigSchema, type RestConfig } from "./config.js";
import { RestConnector } from "./connector.js";
import { HttpTransport } from "./http.js";
import { extractOperations, isSelected } from "./operations.js";
import { SecretRedactor } from "./redact.js";
import { isUrl, loadSpec, type LoadedSpec } from "./spec-loader.js";
import { buildTools } from "./tools.js";

export { restConfigSchema, type RestConfig } from "./config.js";
export { RestConnector } from "./connector.js";

/**
 * OpenAPI 3.0/3.1 and Swagger 2.0 operations as tools. Loading is all-or-nothing: a spec that
 * does not validate, a base URL that cannot be determined or an override naming no operation
 * stops the connector with a message naming the file and the problem.
 */
export async function createRestConnector(config: RestConfig, deps: ConnectorDeps): Promise<RestConnector> {
  const spec = await loadSpec(config.name, config.spec, deps.baseDir);
  const baseUrl = resolveBaseUrl(config, spec);
  const ops = extractOperations(spec);

  const overrides = config.tools ?? {};
  const handles = new Set(ops.map((o) => o.handle));
  const unknown = Object.keys(overrides).filter((k) => !handles.has(k));
  if (unknown.length > 0) {
    throw new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): tools.${unknown[0]} names no operation in ${spec.shownAs} (use an operationId, or "METHOD /path" for operations without one)`,
    );
  }
  const selected = ops.filter((op) => isSelected(op, config.include, config.exclude));
  if (selected.length === 0) {
    throw new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): no operation of ${spec.shownAs} is selected (check include/exclude and x-mcp)`,
    );
  }

  const redactor = new SecretRedactor();
  const transport = new HttpTransport({
    connectTimeoutMs: config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    maxSockets: config.maxSockets ?? DEFAULTS.maxSockets,
    maxResponseBytes: config.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
  });
  const auth = createAuth(config.name, config.auth, transport, redactor);
  const tools = buildTools(selected, {
    connector: config.name,
    baseUrl: baseUrl.href,
    overrides,
    validateResponses: config.validateResponses ?? true,
    reservedParams: auth.reserved,
  });
  deps.logger.info(
    {
      connector: config.name,
      spec: spec.shownAs,
      specVersion: spec.version,
      tools: tools.length,
      of: ops.length,
    },
    "rest connector loaded",
  );
  return new RestConnector({ config, baseUrl, tools, transport, auth, redactor, logger: deps.logger });
}

/**
 * `baseUrl` from config wins; otherwise the spec's first server (3.x, variables at their
 * defaults) or scheme://host/basePath (2.0). Relative server URLs resolve against a spec URL.
 */
function resolveBaseUrl(config: RestConfig, spec: LoadedSpec): URL {
  const fail = (why: string) =>
    new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): cannot determine the base URL from ${spec.shownAs}: ${why}; set "baseUrl" in the connector file`,
    );
  let raw: string | undefined = config.baseUrl;
  if (raw === undefined) {
    const doc = spec.document;
    if (spec.version === "2.0") {
      if (typeof doc.host !== "string") throw fail("the spec has no host");
      const schemes = Array.isArray(doc.schemes) ? doc.schemes : [];
      const scheme = schemes.includes("https") ? "https" : schemes.includes("http") ? "http" : "https";
      raw = `${scheme}://${doc.host}${typeof doc.basePath === "string" ? doc.basePath : ""}`;
    } else {
      const server = Array.isArray(doc.servers) ? doc.servers[0] : undefined;
      if (!isPlainObject(server) || typeof server.url !== "string") throw fail("the spec has no servers");
      raw = substituteVariables(server.url, server.variables);
      if (isUrl(spec.location)) raw = undoPortlessRewrite(raw, new URL(spec.location));
      if (!/^https?:\/\//i.test(raw)) {
        if (!isUrl(spec.location)) throw fail(`server URL "${raw}" is relative`);
        raw = new URL(raw, spec.location).href;
      }
    }
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail(`"${raw}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw fail(`"${raw}" is not http(s)`);
  if (url.username || url.password) throw fail("credentials in the URL are not allowed (use auth)");
  url.hash = "";
  return url;
}

/**
 * swagger-parser rewrites a relative server URL ("/api") against the spec URL but drops its
 * port ("http://host/api" for a spec at "http://host:8080/openapi.yaml"); put the port back.
 */
function undoPortlessRewrite(serverUrl: string, specUrl: URL): string {
  if (specUrl.port === "") return serverUrl;
  const portless = `${specUrl.protocol}//${specUrl.hostname}`;
  if (serverUrl === portless || serverUrl.startsWith(`${portless}/`)) {
    return `${specUrl.origin}${serverUrl.slice(portless.length)}`;
  }
  return serverUrl;
}

function substituteVariables(template: string, variables: unknown): string {
  if (!isPlainObject(variables)) return template;
  return template.replace(/\{([^}]+)\}/g, (m, name: string) => {
    const v = variables[name];
    return isPlainObject(v) && typeof v.default === "string" ? v.default : m;
  });
}

export const restFactory = {
  kind: "rest",
  configSchema: restConfigSchema,
  create: createRestConnector,
} satisfies ConnectorFactory<RestConfig>;
