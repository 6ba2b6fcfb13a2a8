import { z } from "zod";
import { connectorBaseSchema } from "../../core/index.js";

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];
export const httpMethods: readonly HttpMethod[] = HTTP_METHODS;

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), { message: "must be an http:// or https:// URL" });

const secret = (what: string) =>
  z
    .string()
    .min(1, { message: `${what} is empty (set it from an environment reference such as "\${NAME}")` });

const selectorSchema = z
  .object({
    operationIds: z.array(z.string().min(1)).optional().describe("Exact operationIds."),
    tags: z.array(z.string().min(1)).optional().describe("Operations carrying any of these tags."),
    paths: z
      .array(z.string().min(1))
      .optional()
      .describe("Path patterns: `*` matches one segment, `**` any number (e.g. `/orders/**`)."),
    methods: z
      .array(z.enum(HTTP_METHODS.map((m) => m.toUpperCase()) as [string, ...string[]]))
      .optional()
      .describe("HTTP methods, upper case."),
  })
  .strict();
export type OperationSelector = z.infer<typeof selectorSchema>;

const authSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("apiKey"),
      in: z.enum(["header", "query", "cookie"]),
      name: z.string().min(1).describe("Header, query parameter or cookie name, e.g. `X-API-Key`."),
      value: secret("auth.value"),
    })
    .strict(),
  z.object({ type: z.literal("bearer"), token: secret("auth.token") }).strict(),
  z
    .object({
      type: z.literal("basic"),
      username: z.string().min(1),
      password: secret("auth.password"),
    })
    .strict(),
  z
    .object({
      type: z.literal("oauth2ClientCredentials"),
      tokenUrl: httpUrl,
      clientId: z.string().min(1),
      clientSecret: secret("auth.clientSecret"),
      scopes: z.array(z.string().min(1)).optional(),
      audience: z.string().min(1).optional(),
      clientAuth: z
        .enum(["basic", "body"])
        .optional()
        .describe("How the client authenticates to the token endpoint (default: basic)."),
      refreshBeforeExpiryMs: z
        .number()
        .int()
        .nonnegative()
        .max(3_600_000)
        .optional()
        .describe("Refresh a cached token this long before it expires, in milliseconds (default 30000)."),
    })
    .strict(),
]);
export type RestAuthConfig = z.infer<typeof authSchema>;

const toolOverrideSchema = z
  .object({
    description: z.string().min(1).optional(),
    project: z
      .array(z.string().regex(/^(\/.*)?$/, { message: "must be a JSON pointer starting with '/'" }))
      .min(1)
      .optional()
      .describe("Keep only these JSON pointers of the response (`*` matches every array item or member)."),
    maxResultBytes: z.number().int().positive().max(16_777_216).optional(),
    idempotent: z
      .boolean()
      .optional()
      .describe("Overrides the method's idempotency (and so whether the call may be retried)."),
  })
  .strict();
export type ToolOverride = z.infer<typeof toolOverrideSchema>;

export const restConfigSchema = connectorBaseSchema
  .extend({
    kind: z.literal("rest"),
    spec: z
      .string()
      .min(1)
      .describe(
        "OpenAPI 3.0/3.1 or Swagger 2.0 document: a path relative to connectors/, or an http(s) URL.",
      ),
    baseUrl: httpUrl
      .optional()
      .describe("Replaces the spec's server URL (scheme, host and base path). Calls never leave it."),
    include: selectorSchema
      .optional()
      .describe(
        "Only matching operations become tools (every given field must match; any value within a field).",
      ),
    exclude: selectorSchema.optional().describe("Operations matching any of these never become tools."),
    auth: authSchema.optional(),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/), z.string().regex(/^[^\r\n\0]*$/))
      .optional()
      .describe("Static headers sent on every call (not for secrets: use auth)."),
    connectTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(120_000)
      .optional()
      .describe("TCP/TLS connect timeout in milliseconds (default 5000)."),
    maxResponseBytes: z
      .number()
      .int()
      .positive()
      .max(268_435_456)
      .optional()
      .describe("Largest upstream body read, enforced while streaming, in bytes (default 10485760)."),
    maxResultBytes: z
      .number()
      .int()
      .positive()
      .max(16_777_216)
      .optional()
      .describe("Largest result handed to the agent, in bytes; larger ones are shortened (default 262144)."),
    maxSockets: z
      .number()
      .int()
      .positive()
      .max(1024)
      .optional()
      .describe("Concurrent connections to the upstream (default 32)."),
    retry: z
      .object({
        maxAttempts: z
          .number()
          .int()
          .min(1)
          .max(10)
          .optional()
          .describe("Total attempts, including the first (default 3; 1 disables retries)."),
        initialDelayMs: z.number().int().nonnegative().max(60_000).optional().describe("Default 200."),
        maxDelayMs: z.number().int().nonnegative().max(300_000).optional().describe("Default 5000."),
        nonIdempotent: z
          .boolean()
          .optional()
          .describe("Also retry POST/PATCH (default false; only safe with idempotencyKey)."),
      })
      .strict()
      .optional(),
    idempotencyKey: z
      .union([z.boolean(), z.object({ header: z.string().regex(/^[A-Za-z0-9-]+$/) }).strict()])
      .optional()
      .describe(
        "Send an Idempotency-Key header (derived from the call id) on non-idempotent calls (default false).",
      ),
    validateResponses: z
      .boolean()
      .optional()
      .describe("Publish outputSchema and check JSON responses against it (default true)."),
    healthPath: z
      .string()
      .regex(/^\//)
      .optional()
      .describe("GET this path (under baseUrl) for health; default: a TCP connect to the upstream."),
    tools: z
      .record(z.string(), toolOverrideSchema)
      .optional()
      .describe("Per-operation overrides keyed by operationId (or `METHOD /path`)."),
  })
  .strict();

export type RestConfig = z.infer<typeof restConfigSchema>;

export const DEFAULTS = {
  connectTimeoutMs: 5_000,
  timeoutMs: 30_000,
  maxResponseBytes: 10 * 1024 * 1024,
  maxResultBytes: 256 * 1024,
  maxSockets: 32,
  maxAttempts: 3,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  refreshBeforeExpiryMs: 30_000,
  idempotencyHeader: "Idempotency-Key",
} as const;
