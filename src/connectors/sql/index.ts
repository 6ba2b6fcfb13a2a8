import { z } from "zod";
import { connectorBaseSchema, GatewayError, type ConnectorFactory } from "../../core/index.js";

// Placeholder until the sql connector lands: refuses to start rather than pretending to work.
const configSchema = connectorBaseSchema.extend({ kind: z.literal("sql") }).loose();

export const sqlFactory = {
  kind: "sql",
  configSchema,
  create(config) {
    return Promise.reject(new GatewayError("CONFIG_INVALID", `connector "${config.name}" (sql): not implemented yet`));
  },
} satisfies ConnectorFactory<z.infer<typeof configSchema>>;
