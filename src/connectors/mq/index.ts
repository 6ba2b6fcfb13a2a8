import { z } from "zod";
import { connectorBaseSchema, GatewayError, type ConnectorFactory } from "../../core/index.js";

// Placeholder until the mq connector lands: refuses to start rather than pretending to work.
const configSchema = connectorBaseSchema.extend({ kind: z.literal("mq") }).loose();

export const mqFactory = {
  kind: "mq",
  configSchema,
  create(config) {
    return Promise.reject(new GatewayError("CONFIG_INVALID", `connector "${config.name}" (mq): not implemented yet`));
  },
} satisfies ConnectorFactory<z.infer<typeof configSchema>>;
