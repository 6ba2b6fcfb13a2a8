import { z } from "zod";
import { connectorBaseSchema } from "../../core/index.js";
import { checkToolConsistency } from "./config-checks.js";

/** One field of a fixed-width record, as a COBOL copybook would declare it. */
export const fixedFieldSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(64)
      .describe("JSON property the field maps to (also the name used in error messages)."),
    length: z.number().int().min(1).max(32_767).describe("Field width in bytes, sign position included."),
    type: z
      .enum(["alphanumeric", "numeric", "filler"])
      .describe(
        "alphanumeric (PIC X), numeric (PIC 9/S9 with implied decimals) or filler (ignored on read).",
      ),
    decimals: z
      .number()
      .int()
      .min(0)
      .max(30)
      .optional()
      .describe("numeric only: implied decimal places (PIC 9(5)V99 has 2). Default 0."),
    sign: z
      .enum(["none", "leading-separate", "trailing-separate", "leading-overpunch", "trailing-overpunch"])
      .optional()
      .describe(
        "numeric only: how the sign is written. none = unsigned; *-separate = a '+'/'-' byte; *-overpunch = zoned decimal (sign in the first/last digit). Default none.",
      ),
    jsonType: z
      .enum(["string", "integer"])
      .optional()
      .describe(
        "numeric only: decimal string (default; money is never a float) or JSON integer (decimals 0, at most 15 digits).",
      ),
    pad: z
      .string()
      .length(1)
      .optional()
      .describe("Padding character. Default ' ' for alphanumeric and filler, '0' for numeric."),
    justify: z
      .enum(["left", "right"])
      .optional()
      .describe("Where the value sits in the field. Default left for alphanumeric, right for numeric."),
    default: z
      .string()
      .optional()
      .describe(
        "Request records: value written when the argument is absent (e.g. a fixed transaction code).",
      ),
  })
  .strict();

export const fixedLayoutSchema = z.array(fixedFieldSchema).min(1).max(2_000);

export const formatSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("json") }).strict(),
  z
    .object({
      type: z.literal("xml"),
      requestRoot: z.string().min(1).describe("Root element name of the request document."),
      replyRoot: z
        .string()
        .min(1)
        .optional()
        .describe(
          "Root element expected in the reply; its content is the tool result. Default: accept any root.",
        ),
    })
    .strict(),
  z
    .object({
      type: z.literal("fixed"),
      encoding: z
        .enum(["ascii", "latin1", "utf8"])
        .optional()
        .describe(
          "Character set of the record bytes (default latin1). IBM MQ converts from EBCDIC to it on get.",
        ),
      request: fixedLayoutSchema.describe("Request record layout, in order."),
      reply: fixedLayoutSchema.describe("Reply record layout, in order."),
    })
    .strict(),
]);

const annotationsSchema = z
  .object({
    readOnlyHint: z.boolean().optional(),
    destructiveHint: z.boolean().optional(),
    idempotentHint: z.boolean().optional(),
    openWorldHint: z.boolean().optional(),
  })
  .strict();

const jsonSchemaObject = z.record(z.string(), z.unknown());

export const mqToolSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-zA-Z0-9_-]{1,48}$/, { message: "tool names use letters, digits, '_' and '-' (max 48)" })
      .describe("Operation name; the MCP tool is <connector>__<name>."),
    title: z.string().optional(),
    description: z.string().min(1),
    requestQueue: z.string().min(1).max(255).describe("Queue the request is put on."),
    replyQueue: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe(
        "Fixed reply queue. Omit to use a temporary one (AMQP: exclusive server-named queue; IBM MQ: dynamic queue from the model queue).",
      ),
    format: formatSchema,
    requestSchema: jsonSchemaObject.describe("JSON Schema of the tool arguments (type object)."),
    replySchema: jsonSchemaObject.describe("JSON Schema the decoded reply must match (type object)."),
    priority: z
      .number()
      .int()
      .min(0)
      .max(9)
      .optional()
      .describe("Message priority 0-9 (default: the queue's)."),
    persistent: z.boolean().optional().describe("Persistent request messages (default false)."),
    expiryMs: z
      .number()
      .int()
      .min(0)
      .max(86_400_000)
      .optional()
      .describe(
        "Request expiry in ms; 0 = never. Default: the wait budget (plus the late-reply TTL for pending tools), so a request nobody waits for is not executed later.",
      ),
    waitMs: z
      .number()
      .int()
      .min(1)
      .max(600_000)
      .optional()
      .describe("Wait budget for the reply in ms (default: the call timeout)."),
    onTimeout: z
      .enum(["error", "pending"])
      .optional()
      .describe(
        "error (default): no reply in time is UPSTREAM_TIMEOUT. pending: return a request id; <connector>__get_reply fetches the late reply.",
      ),
    annotations: annotationsSchema.optional(),
  })
  .strict();

export const amqpTransportSchema = z
  .object({
    type: z.literal("amqp"),
    url: z
      .string()
      .regex(/^amqps?:\/\//, { message: "an amqp:// or amqps:// URL" })
      .describe("Broker URL; put credentials in ${ENV} references."),
    connectTimeoutMs: z.number().int().positive().max(120_000).optional().describe("Default 10000."),
  })
  .strict();

export const ibmmqTransportSchema = z
  .object({
    type: z.literal("ibmmq"),
    queueManager: z.string().max(48).describe("Queue manager name (empty string: the CCDT's or default)."),
    channel: z.string().min(1).max(20).optional().describe("SVRCONN channel name (not with ccdtUrl)."),
    connName: z
      .string()
      .min(1)
      .max(264)
      .optional()
      .describe("Connection name, e.g. mq.example.com(1414); comma-separated for multi-instance."),
    ccdtUrl: z
      .string()
      .regex(/^(file|https?):\/\//, { message: "a file://, http:// or https:// URL" })
      .optional()
      .describe("Client channel definition table URL, instead of channel + connName."),
    user: z.string().max(1024).optional().describe("MQCSP user id."),
    password: z.string().max(1024).optional().describe("MQCSP password (use an ${ENV} reference)."),
    tls: z
      .object({
        cipherSpec: z.string().min(1).max(32).describe("e.g. ANY_TLS13_OR_HIGHER or TLS_AES_256_GCM_SHA384."),
        keyRepository: z.string().min(1).describe("Key repository stem, e.g. /var/mqm/ssl/key (no .kdb)."),
        certificateLabel: z.string().max(64).optional(),
      })
      .strict()
      .optional(),
    applName: z
      .string()
      .max(28)
      .optional()
      .describe("Application name shown by the queue manager (default portcullis)."),
    replyModelQueue: z
      .string()
      .max(48)
      .optional()
      .describe("Model queue for temporary reply queues (default SYSTEM.DEFAULT.MODEL.QUEUE)."),
    dynamicQueuePrefix: z
      .string()
      .regex(/^[A-Z0-9._]{1,32}\*$/, { message: "a prefix ending in '*', e.g. PORTCULLIS.*" })
      .optional()
      .describe("DynamicQName for temporary reply queues (default PORTCULLIS.*)."),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.ccdtUrl !== undefined && (t.channel !== undefined || t.connName !== undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["ccdtUrl"],
        message: "use either ccdtUrl or channel + connName, not both",
      });
    }
    if (t.ccdtUrl === undefined && (t.channel === undefined || t.connName === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [t.channel === undefined ? "channel" : "connName"],
        message: "channel and connName are required unless ccdtUrl is set",
      });
    }
    if ((t.user === undefined) !== (t.password === undefined)) {
      ctx.addIssue({ code: "custom", path: ["password"], message: "user and password go together" });
    }
  });

export const mqConfigSchema = connectorBaseSchema
  .extend({
    kind: z.literal("mq"),
    transport: z.discriminatedUnion("type", [amqpTransportSchema, ibmmqTransportSchema]),
    maxInFlight: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe("Requests waiting for a reply at once; more are refused with BUSY (default 100)."),
    maxReplyBytes: z
      .number()
      .int()
      .min(64)
      .max(104_857_600)
      .optional()
      .describe("Largest reply accepted (default 1 MiB)."),
    lateReplies: z
      .object({
        ttlMs: z
          .number()
          .int()
          .min(1_000)
          .max(86_400_000)
          .optional()
          .describe("How long a late reply is kept (default 600000)."),
        maxEntries: z
          .number()
          .int()
          .min(1)
          .max(100_000)
          .optional()
          .describe("Pending requests kept at once (default 1000)."),
      })
      .strict()
      .optional(),
    reconnect: z
      .object({
        initialDelayMs: z.number().int().min(10).max(60_000).optional().describe("Default 500."),
        maxDelayMs: z.number().int().min(100).max(600_000).optional().describe("Default 30000."),
      })
      .strict()
      .optional(),
    tools: z.array(mqToolSchema).min(1).max(500),
  })
  .strict()
  .superRefine(checkToolConsistency);

export type MqConfig = z.infer<typeof mqConfigSchema>;
export type MqToolConfig = z.infer<typeof mqToolSchema>;
export type MqFormat = z.infer<typeof formatSchema>;
export type FixedField = z.infer<typeof fixedFieldSchema>;
export type AmqpTransportConfig = z.infer<typeof amqpTransportSchema>;
export type IbmMqTransportConfig = z.infer<typeof ibmmqTransportSchema>;

export const MQ_DEFAULTS = {
  maxInFlight: 100,
  maxReplyBytes: 1_048_576,
  lateReplyTtlMs: 600_000,
  lateReplyMaxEntries: 1_000,
  reconnectInitialDelayMs: 500,
  reconnectMaxDelayMs: 30_000,
  connectTimeoutMs: 10_000,
} as const;
