import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditSchema, type AuditConfig } from "../../src/config/audit-schema.js";
import type { AuditEvent } from "../../src/core/governance.js";

/** A fresh temp directory per test, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-audit-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An audit config as the loader would produce it (zod defaults applied), with test overrides. */
export function auditConfig(overrides: Record<string, unknown> = {}): AuditConfig {
  return auditSchema.parse({ origin: "test.portcullis.local/audit", ...overrides });
}

let n = 0;
export function intent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  n++;
  return {
    type: "call.intent",
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, 0, n)).toISOString(),
    callId: `call-${n}`,
    identity: { subject: "alice", clientId: "desktop", scopes: ["orders-read"] },
    connector: "orders",
    tool: "orders__get_order",
    toolHash: "a".repeat(64),
    manifestHash: "b".repeat(64),
    arguments: { orderId: `o-${n}` },
    decision: { allowed: true },
    ...overrides,
  };
}
