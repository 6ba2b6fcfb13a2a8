import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { ConfigError, type ConfigProblem } from "../config/load-file.js";
import { TOOL_NAME_PATTERN, type Connector, type ToolDefinition } from "../core/index.js";
import type { UpstreamGuard } from "./resilience.js";

export interface RegisteredTool {
  readonly def: ToolDefinition;
  readonly connector: Connector;
  /** SHA-256 over the canonical definition (name, schemas, annotations, upstream target). */
  readonly hash: string;
  /** Upstream time budget for this tool's calls, in milliseconds. */
  readonly timeoutMs: number;
  /** The connector's bulkhead and circuit breakers; calls keep the guard they started with. */
  readonly guard: UpstreamGuard | undefined;
  /** The tools/list entry with the tool's own schema (identities may see a narrowed one). */
  readonly listEntry: Tool;
}

export interface ConnectorSource {
  connector: Connector;
  /** Where the connector was declared, for collision messages. */
  file: string;
  timeoutMs: number;
  guard?: UpstreamGuard;
}

export function toolHash(def: ToolDefinition): string {
  const canonical = canonicalize({
    name: def.name,
    title: def.title,
    description: def.description,
    inputSchema: def.inputSchema,
    outputSchema: def.outputSchema,
    annotations: def.annotations,
    upstream: def.upstream,
  });
  return `sha256:${createHash("sha256")
    .update(canonical ?? "")
    .digest("hex")}`;
}

function listEntry(def: ToolDefinition): Tool {
  const entry: Tool = {
    name: def.name,
    description: def.description,
    inputSchema: def.inputSchema,
    annotations: { ...def.annotations, ...(def.title ? { title: def.title } : {}) },
  };
  if (def.title) entry.title = def.title;
  if (def.outputSchema) entry.outputSchema = def.outputSchema;
  return entry;
}

/**
 * The immutable set of tools the gateway serves, sorted by name so tools/list is deterministic.
 * A reload builds a new registry and swaps it in; calls in flight keep the one they started with.
 */
export class ToolRegistry {
  readonly tools: readonly RegisteredTool[];
  readonly connectors: readonly Connector[];
  private readonly byName: Map<string, RegisteredTool>;
  private active = 0;
  private whenIdle: (() => void) | undefined;

  private constructor(tools: RegisteredTool[], connectors: Connector[]) {
    this.tools = tools;
    this.connectors = connectors;
    this.byName = new Map(tools.map((t) => [t.def.name, t]));
  }

  static empty(): ToolRegistry {
    return new ToolRegistry([], []);
  }

  /** Throws ConfigError naming both sources of a colliding tool name, and every invalid name. */
  static build(sources: readonly ConnectorSource[], withheld: ReadonlySet<string> = new Set()): ToolRegistry {
    const problems: ConfigProblem[] = [];
    const seen = new Map<string, string>();
    const tools: RegisteredTool[] = [];
    for (const { connector, file, timeoutMs, guard } of sources) {
      for (const def of connector.tools()) {
        if (!TOOL_NAME_PATTERN.test(def.name)) {
          problems.push({
            file,
            path: "",
            message: `tool name ${JSON.stringify(def.name)} of connector "${connector.name}" does not match ${TOOL_NAME_PATTERN} (rename the operation)`,
          });
          continue;
        }
        const other = seen.get(def.name);
        const here = `connector "${connector.name}" (${file})`;
        if (other !== undefined) {
          problems.push({
            file,
            path: "",
            message: `tool name "${def.name}" is provided twice: by ${other} and by ${here}; rename one of them`,
          });
          continue;
        }
        seen.set(def.name, here);
        if (withheld.has(def.name)) continue;
        tools.push({ def, connector, hash: toolHash(def), timeoutMs, guard, listEntry: listEntry(def) });
      }
    }
    if (problems.length > 0) throw new ConfigError(problems);
    tools.sort((a, b) => (a.def.name < b.def.name ? -1 : a.def.name > b.def.name ? 1 : 0));
    return new ToolRegistry(
      tools,
      sources.map((s) => s.connector),
    );
  }

  /** A call started on this registry; its connectors stay open until every such call released it. */
  acquire(): void {
    this.active++;
  }

  release(): void {
    this.active--;
    if (this.active === 0) this.whenIdle?.();
  }

  /** Resolves once no call runs on this registry any more. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => (this.whenIdle = resolve));
  }

  get(name: string): RegisteredTool | undefined {
    return this.byName.get(name);
  }

  get size(): number {
    return this.tools.length;
  }
}
