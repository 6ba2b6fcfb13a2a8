import { z } from "zod";

/** Connector names become tool-name prefixes, so they follow the tool-name alphabet, without `__`. */
export const connectorNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9-]+(?:_[a-zA-Z0-9-]+)*$/, {
    message: "connector names use letters, digits, '-' and single '_' (e.g. \"orders\", \"crm-eu\")",
  })
  .max(32);

/**
 * The fields every connector file shares. Each factory extends this with `kind: z.literal(...)`
 * and its own fields, then calls `.strict()` so that unknown keys are refused.
 */
export const connectorBaseSchema = z.object({
  $schema: z.string().optional(),
  name: connectorNameSchema.describe("Connector name; prefixes every tool name (`<name>__<operation>`)."),
  description: z.string().optional(),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(600_000)
    .optional()
    .describe("Per-call upstream timeout in milliseconds (default: the gateway's limits.callTimeoutMs)."),
  required: z
    .boolean()
    .optional()
    .describe("The gateway is not ready (/readyz 503) while this connector is down. Default false."),
  pinTools: z
    .boolean()
    .optional()
    .describe(
      "Pin tool definitions: a tool whose definition changes (e.g. its upstream spec changed) is withheld until an admin accepts it. Default false (changes are reported and audited only).",
    ),
});
