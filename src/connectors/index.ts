import type { AnyConnectorFactory, Connector, ConnectorDeps } from "../core/index.js";
import { mqConfigSchema } from "./mq/config.js";
import { restConfigSchema } from "./rest/config.js";
import { soapConfigSchema } from "./soap/config.js";
import { sqlConfigSchema } from "./sql/config.js";

/**
 * A kind whose schema is at hand (configs are validated before anything starts) and whose
 * implementation is imported on first use: a gateway serving only REST tools never loads the SOAP
 * stack or the PostgreSQL, MariaDB and AMQP drivers (about 50 MB of resident memory together).
 */
function lazyFactory(
  kind: string,
  configSchema: AnyConnectorFactory["configSchema"],
  load: () => Promise<AnyConnectorFactory>,
): AnyConnectorFactory {
  return {
    kind,
    configSchema,
    create: async (config: never, deps: ConnectorDeps): Promise<Connector> =>
      (await load()).create(config, deps),
  };
}

/** The one table of connector kinds. Adding a kind is one line here; no import side effects. */
export const connectorFactories = {
  sql: lazyFactory("sql", sqlConfigSchema, async () => (await import("./sql/index.js")).sqlFactory),
  rest: lazyFactory("rest", restConfigSchema, async () => (await import("./rest/index.js")).restFactory),
  soap: lazyFactory("soap", soapConfigSchema, async () => (await import("./soap/index.js")).soapFactory),
  mq: lazyFactory("mq", mqConfigSchema, async () => (await import("./mq/index.js")).mqFactory),
} satisfies Record<string, AnyConnectorFactory>;

export type ConnectorKind = keyof typeof connectorFactories;

export function factoryFor(kind: string): AnyConnectorFactory | undefined {
  return Object.hasOwn(connectorFactories, kind) ? connectorFactories[kind as ConnectorKind] : undefined;
}
