import { z } from "zod";
import { connectorBaseSchema, GatewayError, type ConnectorFactory } from "../../core/index.js";

// Placeholder until the rest connector lands: refuses to start rather than pretending to work.
const configSchema = connectorBaseSchema.extend({ kind: z.literal("rest") }).loose();

export const restFactory = {
  kind: "rest",
  configSchema,
  create(config) {
    return Promise.reject(new GatewayError("CONFIG_INVALID", `connector "${config.name}" (rest): not implemented yet`));
  },
} satisfies ConnectorFactory<z.infer<typeof configSchema>>;
