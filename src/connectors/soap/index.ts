import { z } from "zod";
import { connectorBaseSchema, GatewayError, type ConnectorFactory } from "../../core/index.js";

// Placeholder until the soap connector lands: refuses to start rather than pretending to work.
const configSchema = connectorBaseSchema.extend({ kind: z.literal("soap") }).loose();

export const soapFactory = {
  kind: "soap",
  configSchema,
  create(config) {
    return Promise.reject(new GatewayError("CONFIG_INVALID", `connector "${config.name}" (soap): not implemented yet`));
  },
} satisfies ConnectorFactory<z.infer<typeof configSchema>>;
