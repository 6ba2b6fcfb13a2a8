import { createHash } from "node:crypto";

/** The strictest tool-name rule common MCP clients enforce. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
export const TOOL_NAME_MAX = 64;
/** Separates the connector name from the operation in a tool name. */
export const TOOL_NAME_SEPARATOR = "__";

/** Replaces every character a client would refuse with `_` and collapses runs of `_`. */
export function sanitizeName(raw: string): string {
  return raw
    .replace(/[^a-zA-Z0-9_-]+/g, "_")
    .replace(/_{3,}/g, "__")
    .replace(/^_+|_+$/g, "");
}

/**
 * `<connector>__<operation>`, sanitised and capped at 64 characters. A name that must be cut
 * gets a stable 8-hex suffix derived from the full name, so two long operations that share a
 * prefix still get distinct, reproducible names.
 */
export function toolName(connector: string, operation: string): string {
  const full = `${connector}${TOOL_NAME_SEPARATOR}${sanitizeName(operation) || "op"}`;
  if (full.length <= TOOL_NAME_MAX) return full;
  const suffix = createHash("sha256").update(full).digest("hex").slice(0, 8);
  return `${full.slice(0, TOOL_NAME_MAX - suffix.length - 1)}_${suffix}`;
}
