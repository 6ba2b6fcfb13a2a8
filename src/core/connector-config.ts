import { z } from "zod";

/** Connector names become tool-name prefixes, so they follow the tool-name alphabet, without `__`. */
export const connectorNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9-]+(?:_[a-zA-Z0-9-]+)*$/, {
    message: "connector names use letters, digits, '-' and single '_' (e.g. \"orders\", \"crm-eu\")",
  })
  .max(32);

/** Per-upstream bulkhead and circuit breakers (docs/resilience.md); applied by src/gateway/resilience.ts. */
const breakerSchema = z
  .object({
    consecutiveFailures: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(5)
      .describe(
        "The connector's circuit opens after this many consecutive backend failures across all its tools.",
      ),
    halfOpenAfterMs: z
      .number()
      .int()
      .min(1)
      .max(3_600_000)
      .default(10_000)
      .describe(
        "How long an open circuit (connector or tool) fails fast before one trial call may test the upstream, in milliseconds.",
      ),
  })
  .strict();

const perToolSchema = z
  .object({
    maxConcurrent: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe(
        "Calls of one tool in flight at most (a bulkhead per tool, queueing up to maxQueue). Default: no per-tool limit.",
      ),
    consecutiveFailures: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(3)
      .describe(
        "A tool's own circuit opens after this many consecutive backend failures of that tool. Keep it below breaker.consecutiveFailures so that one broken operation, called alone, opens only its own circuit.",
      ),
  })
  .strict();

/**
 * The `resilience` block of a connector file. Retries are deliberately absent: connectors retry
 * themselves, and only operations they know to be idempotent.
 */
export const resilienceSchema = z
  .object({
    maxConcurrent: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(32)
      .describe("Calls to this connector in flight at most (bulkhead)."),
    maxQueue: z
      .number()
      .int()
      .min(0)
      .max(100_000)
      .default(64)
      .describe(
        "Calls waiting for a free slot at most; beyond that a call is refused at once with BUSY. Waiting counts against the call's timeout.",
      ),
    perTool: perToolSchema.prefault({}),
    breaker: breakerSchema.prefault({}),
  })
  .strict()
  .describe("Bulkheads and circuit breakers for this connector's upstream.");

export type ResilienceConfig = z.output<typeof resilienceSchema>;
export type ResilienceInput = z.input<typeof resilienceSchema>;

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
  resilience: resilienceSchema
    .prefault({})
    .describe("Bulkhead and circuit breakers for this upstream (docs/resilience.md)."),
  pinTools: z
    .boolean()
    .optional()
    .describe(
      "Pin tool definitions: a tool whose definition changes (e.g. its upstream spec changed) is withheld until an admin accepts it. Default false (changes are reported and audited only).",
    ),
});
