import { z } from "zod";

/** Tool names and `*` wildcards, in the tool-name alphabet (`orders__*`, `*__get_*`, `customers__find_customer`). */
const toolPatternSchema = z.string().regex(/^[a-zA-Z0-9_*-]{1,64}$/, {
  message: 'a tool name or a pattern with "*" (e.g. "orders__*"), in the tool-name alphabet [a-zA-Z0-9_-]',
});

const decimalText = z
  .string()
  .regex(/^-?\d{1,30}(?:\.\d{1,18})?$/, { message: 'a decimal string such as "200.00"' });

export const rateLimitSchema = z
  .object({
    limit: z.number().int().positive().max(1_000_000).describe("Calls allowed per window."),
    windowSec: z
      .number()
      .positive()
      .max(86_400)
      .describe("Window length, in seconds; tokens refill evenly over it."),
    burst: z
      .number()
      .int()
      .positive()
      .max(1_000_000)
      .optional()
      .describe("Largest burst (bucket size); default: limit."),
  })
  .strict();

export const constraintSchema = z
  .object({
    enum: z
      .array(z.union([z.string(), z.number(), z.boolean()]))
      .min(1)
      .optional()
      .describe("Allowed values (a subset of the tool's own enum, when it has one)."),
    minimum: z.number().optional().describe("Smallest allowed number."),
    maximum: z.number().optional().describe("Largest allowed number."),
    pattern: z
      .string()
      .min(1)
      .optional()
      .describe("Regular expression (unanchored, as in JSON Schema; anchor with ^…$)."),
    minLength: z.number().int().min(0).optional().describe("Shortest allowed string, in characters."),
    maxLength: z.number().int().min(0).optional().describe("Longest allowed string, in characters."),
    maxItems: z.number().int().min(0).optional().describe("Most array items allowed."),
    money: z
      .object({
        min: decimalText.optional().describe("Smallest amount, exact decimal."),
        max: decimalText.optional().describe("Largest amount, exact decimal."),
        maxScale: z
          .number()
          .int()
          .min(0)
          .max(18)
          .optional()
          .describe("Most decimal places allowed (2 for cents)."),
      })
      .strict()
      .optional()
      .describe("Amounts as exact decimal strings (or JSON numbers), compared without floating point."),
    optional: z
      .boolean()
      .default(false)
      .describe(
        "Allow the agent to omit this argument. Default false: a constrained argument must be sent, so a tool default cannot bypass the rule.",
      ),
  })
  .strict();

export const approvalRuleSchema = z
  .object({
    when: z
      .string()
      .min(1)
      .describe('Condition on the arguments, e.g. "amount > 200.00" (exact decimals; and/or/not).'),
    reason: z
      .string()
      .max(500)
      .optional()
      .describe("Why a human must look; shown to the agent and the approver."),
  })
  .strict();

export const toolGrantSchema = z
  .object({
    tool: toolPatternSchema.describe(
      "Exact tool name, or a pattern with * (patterns take rateLimit and readOnly only).",
    ),
    readOnly: z
      .boolean()
      .optional()
      .describe("Grant only tools whose readOnlyHint is true (useful with patterns)."),
    constraints: z
      .record(z.string().min(1), constraintSchema)
      .optional()
      .describe("Per-argument constraints, keyed by argument name."),
    bind: z
      .record(z.string().min(1), z.string().min(1))
      .optional()
      .describe("Claim-bound arguments: argument name → claim name (dotted for nested claims)."),
    rateLimit: rateLimitSchema.optional().describe("Per identity, per tool."),
    approval: approvalRuleSchema.optional().describe("When a call needs a human approver."),
  })
  .strict();

export const scopeManifestSchema = z
  .object({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, {
        message: 'scope names use letters, digits and . _ : / - (e.g. "support-agent", "orders:read")',
      })
      .describe("Scope name, as carried in the token (after scopeMap)."),
    description: z.string().min(1).describe("What this scope is for, in a sentence."),
    tools: z
      .array(z.union([toolPatternSchema, toolGrantSchema]))
      .default([])
      .describe("Tools granted: names, patterns, or objects with rules."),
    deny: z
      .array(toolPatternSchema)
      .default([])
      .describe("Tools refused to anyone holding this scope, whatever other scopes grant."),
    rateLimit: rateLimitSchema.optional().describe("Per identity, across all tools of this scope."),
  })
  .strict();

export type ScopeManifest = z.infer<typeof scopeManifestSchema>;
export type ToolGrantConfig = z.infer<typeof toolGrantSchema>;
export type ConstraintConfig = z.infer<typeof constraintSchema>;
export type RateLimitConfig = z.infer<typeof rateLimitSchema>;
export type ApprovalRuleConfig = z.infer<typeof approvalRuleSchema>;
