import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Identity, ObjectJsonSchema, ToolDefinition } from "../../src/core/index.js";

function tool(
  connector: string,
  operation: string,
  inputSchema: ObjectJsonSchema,
  readOnly: boolean,
): ToolDefinition {
  return {
    name: `${connector}__${operation}`,
    connector,
    operation,
    description: `${operation} on ${connector}`,
    inputSchema,
    annotations: {
      readOnlyHint: readOnly,
      destructiveHint: false,
      idempotentHint: readOnly,
      openWorldHint: false,
    },
  };
}

/** Tool definitions as the demo's connectors publish them (data only: no backend is involved). */
export const TOOLS: readonly ToolDefinition[] = [
  tool(
    "customers",
    "find_customer",
    { type: "object", properties: { customerId: { type: "string" } }, required: ["customerId"] },
    true,
  ),
  tool(
    "customers",
    "search_customers",
    {
      type: "object",
      properties: {
        prefix: { type: "string", maxLength: 100 },
        limit: { type: "integer", minimum: 1, maximum: 500 },
      },
      required: ["prefix"],
    },
    true,
  ),
  tool(
    "customers",
    "query",
    { type: "object", properties: { sql: { type: "string" } }, required: ["sql"] },
    true,
  ),
  tool(
    "customers",
    "update_order_status",
    {
      type: "object",
      properties: {
        orderId: { type: "string", pattern: "^O-" },
        status: { type: "string", enum: ["open", "shipped", "cancelled", "refunded"] },
        amount: { type: "string", description: "Refund amount." },
        note: { type: "string" },
      },
      required: ["orderId", "status"],
      additionalProperties: false,
    },
    false,
  ),
  tool(
    "orders",
    "list_orders",
    {
      type: "object",
      properties: {
        customerId: { type: "string" },
        status: { type: "string", enum: ["open", "shipped", "cancelled"] },
        limit: { type: "integer", minimum: 1, maximum: 1000 },
        tags: { type: "array", items: { type: "string" } },
      },
      additionalProperties: false,
    },
    true,
  ),
  tool(
    "orders",
    "get_order",
    { type: "object", properties: { orderId: { type: "string" } }, required: ["orderId"] },
    true,
  ),
  tool(
    "orders",
    "create_order",
    {
      type: "object",
      properties: { customerId: { type: "string" }, total: { type: "number" }, lines: { type: "array" } },
      required: ["customerId", "total"],
      additionalProperties: false,
    },
    false,
  ),
];

export function toolNamed(name: string): ToolDefinition {
  const t = TOOLS.find((x) => x.name === name);
  if (!t) throw new Error(`no fixture tool ${name}`);
  return t;
}

/** Writes manifests into a fresh temp directory; returns the directory. */
export function manifestDir(manifests: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-scopes-test-"));
  for (const [file, body] of Object.entries(manifests)) {
    writeFileSync(join(dir, file), typeof body === "string" ? body : JSON.stringify(body, null, 2));
  }
  return dir;
}

export function identity(subject: string, scopes: string[], claims: Record<string, unknown> = {}): Identity {
  return {
    subject,
    issuer: "https://idp.test.example",
    scopes,
    claims: { sub: subject, ...claims },
    source: "jwt",
  };
}
