import type { ConnectorFactory } from "../../core/index.js";
import { mqConfigSchema, type MqConfig } from "./config.js";
import { createMqConnector } from "./connector.js";

/**
 * `kind: "mq"`: request/reply tools over IBM MQ or AMQP 0-9-1, with correlation, wait budgets,
 * late replies and reconnects. `ibmmq` is imported only when an ibmmq transport is configured.
 */
export const mqFactory = {
  kind: "mq",
  configSchema: mqConfigSchema,
  create: (config, deps) => createMqConnector(config, deps),
} satisfies ConnectorFactory<MqConfig>;

export { mqConfigSchema, type MqConfig } from "./config.js";
export { createMqConnector, MqConnector, type MqConnectorOverrides } from "./connector.js";
