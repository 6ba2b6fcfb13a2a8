import { z } from "zod";
import { connectorBaseSchema } from "../../core/index.js";

const secret = (what: string) =>
  z
    .string()
    .min(1)
    .describe(`${what}. Write it as a \${ENV_NAME} reference, never as a literal in a committed file.`);

const wsSecuritySchema = z
  .object({
    type: z.literal("wsSecurity"),
    username: z.string().min(1),
    password: secret("UsernameToken password"),
    passwordType: z
      .enum(["PasswordText", "PasswordDigest"])
      .default("PasswordText")
      .describe(
        "PasswordDigest sends base64(SHA-1(nonce + created + password)) instead of the password (default: PasswordText).",
      ),
    timestamp: z.boolean().default(true).describe("Add a wsu:Timestamp (default: true)."),
    mustUnderstand: z
      .boolean()
      .default(false)
      .describe("Mark the Security header mustUnderstand (default: false)."),
  })
  .strict();

const basicSchema = z
  .object({ type: z.literal("basic"), username: z.string().min(1), password: secret("HTTP Basic password") })
  .strict();

const bearerSchema = z.object({ type: z.literal("bearer"), token: secret("Bearer token") }).strict();

const tlsSchema = z
  .object({
    cert: z
      .string()
      .min(1)
      .optional()
      .describe("Client certificate (PEM file, relative to the connectors directory)."),
    key: z
      .string()
      .min(1)
      .optional()
      .describe("Client private key (PEM file, relative to the connectors directory)."),
    passphrase: secret("Passphrase of the private key").optional(),
    ca: z
      .string()
      .min(1)
      .optional()
      .describe("CA bundle to trust for the endpoint (PEM file); default: the system's."),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe(
        "Verify the endpoint's certificate (default: true). Turning it off is for test systems only.",
      ),
    servername: z
      .string()
      .min(1)
      .optional()
      .describe("TLS SNI / certificate name to expect, when it differs from the host."),
  })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: "cert and key go together: give both for a client certificate, or neither",
  });

const operationSchema = z
  .object({
    title: z.string().optional(),
    description: z.string().optional().describe("Replaces the WSDL's documentation as the tool description."),
    readOnly: z.boolean().default(false).describe("The operation changes nothing (default: false)."),
    idempotent: z
      .boolean()
      .optional()
      .describe(
        "Repeating the call has no further effect; enables retries (default: the value of readOnly).",
      ),
    destructive: z
      .boolean()
      .optional()
      .describe("The operation may delete or overwrite data (default: true unless readOnly)."),
  })
  .strict();

export const soapConfigSchema = connectorBaseSchema
  .extend({
    kind: z.literal("soap"),
    wsdl: z
      .string()
      .min(1)
      .describe(
        "WSDL 1.1 file (relative to the connectors directory) or http(s) URL; its imports are followed.",
      ),
    endpoint: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe("Endpoint URL to call instead of the WSDL's soap:address."),
    service: z.string().min(1).optional().describe("WSDL service to use (default: all services)."),
    port: z.string().min(1).optional().describe("WSDL port to use (default: all SOAP ports)."),
    soapVersion: z
      .enum(["1.1", "1.2"])
      .default("1.1")
      .describe("Preferred SOAP version when an operation is bound to both (default: 1.1)."),
    include: z.array(z.string().min(1)).optional().describe("Only these operations become tools."),
    exclude: z.array(z.string().min(1)).optional().describe("These operations do not become tools."),
    operations: z
      .record(z.string(), operationSchema)
      .optional()
      .describe("Per-operation settings, keyed by WSDL operation name."),
    security: z.discriminatedUnion("type", [wsSecuritySchema, basicSchema, bearerSchema]).optional(),
    tls: tlsSchema.optional(),
    maxResponseBytes: z
      .number()
      .int()
      .positive()
      .max(1024 * 1024 * 1024)
      .default(10 * 1024 * 1024)
      .describe(
        "Largest response accepted, in bytes (default: 10 MiB); larger ones are cut off while streaming.",
      ),
    keepAlive: z.boolean().default(true).describe("Reuse connections (default: true)."),
    maxSockets: z
      .number()
      .int()
      .positive()
      .max(1024)
      .default(32)
      .describe("Connections per host (default: 32)."),
    retries: z
      .number()
      .int()
      .min(0)
      .max(5)
      .default(2)
      .describe(
        "Extra attempts for idempotent operations on connection failures and HTTP 502/503/504 (default: 2).",
      ),
    retryBackoffMs: z
      .number()
      .int()
      .positive()
      .max(10_000)
      .default(200)
      .describe("First retry delay in milliseconds, doubled per attempt, with jitter (default: 200)."),
  })
  .strict();

export type SoapConfig = z.infer<typeof soapConfigSchema>;
export type SoapSecurityConfig = NonNullable<SoapConfig["security"]>;
export type SoapTlsConfig = NonNullable<SoapConfig["tls"]>;
