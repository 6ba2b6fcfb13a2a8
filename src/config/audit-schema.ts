import { z } from "zod";

/** The audit log's settings, embedded as `audit` in mcp.config.json. Owned by src/audit; see docs/audit.md. */

const keyNameSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s+]+$/, { message: "key names have no spaces and no '+'" });

const signingSchema = z
  .object({
    privateKey: z
      .string()
      .startsWith("PRIVATE+KEY+")
      .optional()
      .describe(
        "Checkpoint signing key (signed-note format `PRIVATE+KEY+<name>+<id>+<key>`, from `portcullis audit keygen`). Use a `${ENV}` reference; it wins over keyFile.",
      ),
    keyFile: z
      .string()
      .default("keys/checkpoint.key")
      .describe("File holding the signing key, relative to paths.audit. Used when privateKey is not set."),
    autoGenerate: z
      .boolean()
      .default(true)
      .describe(
        "Create keyFile with a new key when neither privateKey nor keyFile exists (first start). Set false in production so that a missing key is an error.",
      ),
    keyName: keyNameSchema.optional().describe("Name of an auto-generated key (default: the log's origin)."),
    trustedKeys: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Verifier keys (`<name>+<id>+<key>`) accepted on checkpoints besides the active key's own: the previous keys after a rotation.",
      ),
  })
  .strict();

const externalSchema = z
  .object({
    directory: z
      .string()
      .optional()
      .describe(
        "Directory outside the store (another disk, a mounted bucket) where each checkpoint is also written: `checkpoint` (latest) and `checkpoints.log` (all). Relative to paths.audit.",
      ),
    url: z
      .url()
      .optional()
      .describe(
        "HTTP(S) endpoint each signed checkpoint note is POSTed to (text/plain), e.g. a witness or a WORM store.",
      ),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .describe("Extra headers for the POST, e.g. Authorization with a `${ENV}` reference."),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .max(60_000)
      .default(5_000)
      .describe("POST timeout, in milliseconds."),
  })
  .strict();

const checkpointSchema = z
  .object({
    everyRecords: z
      .number()
      .int()
      .positive()
      .default(1_000)
      .describe("Issue a signed checkpoint once this many records were appended since the last one."),
    everyMs: z
      .number()
      .int()
      .min(100)
      .default(10_000)
      .describe("Issue a checkpoint this often (milliseconds) while records arrive."),
    heartbeatMs: z
      .number()
      .int()
      .min(1_000)
      .default(300_000)
      .describe(
        "When idle, re-sign the unchanged tree this often (milliseconds), so that a silent log is provably alive.",
      ),
    external: externalSchema.prefault({}),
  })
  .strict();

const redactionRuleSchema = z
  .object({
    connector: z.string().default("*").describe("Connector name the rule applies to, or `*`."),
    tool: z
      .string()
      .default("*")
      .describe("Full tool name (`<connector>__<operation>`) the rule applies to, or `*`."),
    paths: z
      .array(z.string().min(1))
      .min(1)
      .describe(
        "Argument paths to replace by a keyed digest: `card.number`, `items[*].iban`, `*.password`, `$.secret`.",
      ),
  })
  .strict();

const redactionSchema = z
  .object({
    key: z
      .string()
      .min(32)
      .optional()
      .describe("HMAC-SHA256 key for redaction digests (at least 32 characters). Use a `${ENV}` reference."),
    rules: z.array(redactionRuleSchema).default([]),
  })
  .strict()
  .refine((v) => v.rules.length === 0 || v.key !== undefined, {
    message: "redaction rules need redaction.key (an HMAC key, as a ${ENV} reference)",
    path: ["key"],
  });

export const auditSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe("Turning the audit log off is refused unless this is false on purpose."),
    file: z.string().default("audit.db").describe("SQLite file, relative to paths.audit."),
    origin: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^\s]+$/, { message: "the origin has no spaces" })
      .optional()
      .describe(
        "Checkpoint origin: a unique name for this log, e.g. `audit.example.com/portcullis/prod`. Default: `portcullis/<hostname>`, fixed when the log is created.",
      ),
    busyTimeoutMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(2_000)
      .describe(
        "How long an append waits for a locked database before the call is refused, in milliseconds.",
      ),
    maxBatch: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(2_000)
      .describe("Most records written by one group-commit transaction."),
    maxSizeBytes: z
      .number()
      .int()
      .min(65_536)
      .optional()
      .describe(
        "Cap on the database file, in bytes. When it is reached, appends fail and calls are refused (fail closed) instead of filling the disk.",
      ),
    maxRecordBytes: z
      .number()
      .int()
      .min(4_096)
      .default(262_144)
      .describe("Arguments making a record larger than this (bytes) are recorded as their digest and size."),
    outcomeBeforeAnswer: z
      .boolean()
      .default(false)
      .describe(
        "Hold each tool call's answer until its outcome record is durable (one more fsync on the answer's path). Off: the outcome record is queued before the answer is sent and committed right after it; the intent record is always durable before the upstream is touched. After a crash, calls answered in the last moment before it may then lack their outcome record, never their intent record.",
      ),
    signing: signingSchema.prefault({}),
    checkpoint: checkpointSchema.prefault({}),
    redaction: redactionSchema.prefault({}),
  })
  .strict();

export type AuditConfig = z.infer<typeof auditSchema>;
