import { z } from "zod";
import { auditSchema } from "./audit-schema.js";
import { identitySchema } from "./identity-schema.js";
import { loopGuardSchema } from "../gateway/loop-guard.js";

const httpSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: z
      .string()
      .default("127.0.0.1")
      .describe("Interface to bind. Loopback by default; set 0.0.0.0 only behind TLS and a firewall."),
    port: z.number().int().min(0).max(65535).default(8080).describe("TCP port (0 = any free port)."),
    path: z.string().startsWith("/").default("/mcp").describe("Path of the Streamable HTTP endpoint."),
    publicUrl: z
      .url()
      .optional()
      .describe(
        "Canonical resource URI of the MCP endpoint as clients see it (used as JWT audience and in OAuth metadata). Default: http://<host>:<port><path>.",
      ),
    allowedOrigins: z
      .array(z.string())
      .default([])
      .describe(
        "Origins allowed to call /mcp from a browser (exact match, e.g. https://app.example.com). Requests without Origin are allowed; loopback origins are allowed when bound to loopback.",
      ),
    allowedHosts: z
      .array(z.string())
      .default([])
      .describe(
        "Host header values accepted (DNS-rebinding protection). Default: the bind host and localhost/127.0.0.1/[::1] with the port.",
      ),
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(1_048_576)
      .describe("Largest accepted request body, in bytes (larger → 413)."),
    sessionIdleTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(30 * 60_000)
      .describe("A session unused this long (milliseconds) is ended."),
    maxSessions: z.number().int().positive().default(1000).describe("Open sessions at most; more → 503."),
  })
  .strict();

const stdioSchema = z.object({ enabled: z.boolean().default(true) }).strict();

export const limitsSchema = z
  .object({
    callTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(600_000)
      .default(30_000)
      .describe(
        "Default upstream time budget per call, in milliseconds (a connector's timeoutMs overrides it).",
      ),
    maxResultBytes: z
      .number()
      .int()
      .positive()
      .default(1_048_576)
      .describe("Largest tool result returned to an agent, in bytes of JSON."),
    pageSize: z.number().int().min(1).max(1000).default(100).describe("Tools per tools/list page."),
    shutdownGraceMs: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe("On SIGTERM/SIGINT, how long in-flight calls may finish, in milliseconds."),
    loopGuard: loopGuardSchema
      .prefault({})
      .describe(
        "Refuses the same identity repeating the same call (same tool, same arguments) too often: an agent stuck in a loop.",
      ),
  })
  .strict();

export const gatewayConfigSchema = z
  .object({
    $schema: z.string().optional(),
    server: z
      .object({
        name: z.string().default("portcullis").describe("Server name reported to MCP clients."),
      })
      .strict()
      .prefault({}),
    transports: z
      .object({
        stdio: stdioSchema.prefault({}),
        http: httpSchema.prefault({}),
      })
      .strict()
      .prefault({}),
    identity: identitySchema.prefault({}),
    paths: z
      .object({
        connectors: z
          .string()
          .default("connectors")
          .describe("Directory of connector files, relative to this file."),
        scopes: z.string().default("scopes").describe("Directory of scope manifests, relative to this file."),
        audit: z.string().default("audit").describe("Directory of the audit store, relative to this file."),
      })
      .strict()
      .prefault({}),
    audit: auditSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    logging: z
      .object({
        level: z
          .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
          .default("info")
          .describe(
            "JSON log lines on stderr (info: one line per call), written in batches of up to 4 KB at most 200 ms after the first line and at exit. Values under credential-like keys (token, password, secret, apiKey, authorization, cookie, connectionString, privateKey; any case, any depth) are written as [redacted].",
          ),
      })
      .strict()
      .prefault({}),
    observability: z
      .object({
        metrics: z
          .boolean()
          .default(true)
          .describe("Serve Prometheus metrics at /metrics on the HTTP transport."),
        metricsScope: z
          .string()
          .optional()
          .describe(
            "Require a bearer token holding this scope for /metrics (metric labels name tools). Default: open.",
          ),
        traceArguments: z
          .boolean()
          .default(false)
          .describe(
            "Record tool arguments on trace spans. Off by default: arguments may hold personal data.",
          ),
      })
      .strict()
      .prefault({})
      .describe(
        "Metrics and tracing. Tracing itself is configured by the standard OTEL_* environment variables.",
      ),
    demo: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe("Start the bundled sample enterprise backends (demo/) with the gateway."),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
export type HttpConfig = z.infer<typeof httpSchema>;
export type Limits = z.infer<typeof limitsSchema>;
