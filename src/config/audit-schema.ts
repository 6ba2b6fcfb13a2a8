import { z } from "zod";

/** The audit log's settings. Owned by src/audit; see docs/audit.md. */
export const auditSchema = z
  .object({
    enabled: z.boolean().default(true).describe("Turning the audit log off is refused unless this is false on purpose."),
    file: z.string().default("audit.db").describe("SQLite file, relative to paths.audit."),
  })
  .strict();

export type AuditConfig = z.infer<typeof auditSchema>;
