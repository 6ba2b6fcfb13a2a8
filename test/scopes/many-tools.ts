import type { ToolDefinition } from "../../src/core/index.js";

/** `count` tools over `connectors` connectors, every seventh one writes, with a small enum argument. */
export function manyTools(count: number, connectors = 100): ToolDefinition[] {
  return Array.from({ length: count }, (_, i) => {
    const connector = `c${i % connectors}`;
    const operation = `op_${i}`;
    return {
      name: `${connector}__${operation}`,
      connector,
      operation,
      description: `operation ${i}`,
      inputSchema: {
        type: "object",
        properties: { mode: { type: "string", enum: ["a", "b", "c"] }, n: { type: "integer" } },
        required: ["mode"],
      },
      annotations: {
        readOnlyHint: i % 7 !== 0,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
    };
  });
}

/** Manifests for the 10,000-tool case: patterns, a deny, and constrained exact grants. */
export function manyManifests(): Record<string, unknown> {
  return {
    "readers.json": {
      name: "readers",
      description: "read-only tools of half the connectors",
      tools: Array.from({ length: 50 }, (_, c) => ({ tool: `c${c}__*`, readOnly: true })),
      deny: ["c0__op_100"],
    },
    "writers.json": {
      name: "writers",
      description: "a few constrained tools",
      tools: Array.from({ length: 20 }, (_, k) => ({
        tool: `c${k}__op_${k}`,
        constraints: { mode: { enum: ["a"] } },
      })),
    },
  };
}
