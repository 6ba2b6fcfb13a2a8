import { GatewayError, type ConnectorDeps, type ConnectorFactory } from "../../core/index.js";
import { soapConfigSchema, type SoapConfig } from "./config.js";
import { SoapConnector, buildOperation } from "./connector.js";
import { selectOperations } from "./operations.js";
import { SoapTransport } from "./transport.js";
import { WsdlError, loadWsdl } from "./wsdl-loader.js";
import { XmlSyntaxError } from "./xml-dom.js";

export type { SoapConfig } from "./config.js";
export { soapConfigSchema } from "./config.js";

async function create(config: SoapConfig, deps: ConnectorDeps): Promise<SoapConnector> {
  const label = `connector "${config.name}" (soap)`;
  const logger = deps.logger.child({ connector: config.name, kind: "soap" });
  const transport = new SoapTransport(config, deps.baseDir, label);
  try {
    const wsdl = await loadWsdl(config.wsdl, deps.baseDir, transport.http);
    const { operations, skipped } = selectOperations(wsdl, {
      service: config.service,
      port: config.port,
      soapVersion: config.soapVersion,
    });
    const known = new Set([...operations.map((o) => o.name), ...skipped.map((s) => s.name)]);
    const unknown = [
      ...(config.include ?? []).map((n) => ["include", n] as const),
      ...(config.exclude ?? []).map((n) => ["exclude", n] as const),
      ...Object.keys(config.operations ?? {}).map((n) => ["operations", n] as const),
    ].filter(([, n]) => !known.has(n));
    if (unknown.length > 0) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `${label}: ${unknown.map(([field, n]) => `${field} names operation "${n}"`).join(", ")}, which the WSDL does not offer (it has: ${[...known].join(", ")})`,
      );
    }
    const include = config.include ? new Set(config.include) : undefined;
    const exclude = new Set(config.exclude ?? []);
    const chosen = operations.filter((o) => (include ? include.has(o.name) : true) && !exclude.has(o.name));
    for (const s of skipped)
      logger.warn({ operation: s.name, reason: s.reason }, "soap operation not offered as a tool");
    const built = chosen.map((o) => buildOperation(config.name, config, o));
    const byName = new Map<string, string>();
    for (const b of built) {
      const other = byName.get(b.tool.name);
      if (other) {
        throw new GatewayError(
          "CONFIG_INVALID",
          `${label}: operations "${other}" and "${b.model.name}" both become tool ${b.tool.name}; exclude one of them`,
        );
      }
      byName.set(b.tool.name, b.model.name);
    }
    try {
      await transport.warm(chosen.map((o) => o.version));
    } catch (err) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `${label}: the soap library cannot use the WSDL: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    logger.info({ tools: built.length, skipped: skipped.length }, "soap connector ready");
    return new SoapConnector(config, built, transport, logger);
  } catch (err) {
    transport.close();
    if (err instanceof XmlSyntaxError) {
      throw new GatewayError("CONFIG_INVALID", `${label}: WSDL ${config.wsdl}: ${err.message}`, {
        cause: err,
      });
    }
    if (err instanceof WsdlError) {
      throw new GatewayError(
        err.unavailable ? "UPSTREAM_UNAVAILABLE" : "CONFIG_INVALID",
        `${label}: WSDL ${config.wsdl}: ${err.message}`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

export const soapFactory = {
  kind: "soap",
  configSchema: soapConfigSchema,
  create,
} satisfies ConnectorFactory<SoapConfig>;
