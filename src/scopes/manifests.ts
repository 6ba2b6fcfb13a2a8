import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import canonicalize from "canonicalize";
import type { JsonSchema, ToolDefinition } from "../core/index.js";
import {
  ConfigError,
  displayPath,
  loadJsonFile,
  type ConfigProblem,
  type JsonSource,
} from "../config/load-file.js";
import { ConditionSyntaxError, parseCondition, type Condition } from "./condition.js";
import { compileConstraint, type CompiledConstraint } from "./constraints.js";
import {
  scopeManifestSchema,
  type RateLimitConfig,
  type ScopeManifest,
  type ToolGrantConfig,
} from "./manifest-schema.js";

export interface ToolMatcher {
  readonly pattern: string;
  readonly exact: boolean;
  matches(toolName: string): boolean;
}

export interface BoundArgument {
  readonly arg: string;
  /** Claim name as written in the manifest. */
  readonly claim: string;
}

/** One entry of a manifest's `tools`, compiled. */
export interface CompiledGrant {
  readonly scope: string;
  /** Where it was written, e.g. `scopes/order-ops.json tools[2]`, for logs and audit reasons. */
  readonly origin: string;
  readonly matcher: ToolMatcher;
  readonly readOnly: boolean;
  readonly constraints: readonly CompiledConstraint[];
  readonly bind: readonly BoundArgument[];
  readonly rateLimit?: RateLimitConfig;
  readonly approval?: { readonly condition: Condition; readonly reason?: string };
}

export interface CompiledScope {
  readonly name: string;
  readonly description: string;
  readonly file: string;
  /** SHA-256 of the manifest's canonical JSON (RFC 8785), recorded in audit records. */
  readonly hash: string;
  readonly grants: readonly CompiledGrant[];
  readonly deny: readonly ToolMatcher[];
  readonly rateLimit?: RateLimitConfig;
}

/** Every loaded manifest, by scope name. Immutable; a reload builds a new one. */
export interface ScopeSet {
  readonly scopes: ReadonlyMap<string, CompiledScope>;
  /** Digest over all manifests, to tell whether a reload changed anything. */
  readonly hash: string;
}

const WILDCARD_CHARS = "[a-zA-Z0-9_-]*";

export function compileMatcher(pattern: string): ToolMatcher {
  if (!pattern.includes("*")) return { pattern, exact: true, matches: (name) => name === pattern };
  const re = new RegExp(`^${pattern.split("*").join(WILDCARD_CHARS)}$`);
  // The literal prefix rejects most names without running the regex (tools/list over 10,000 tools).
  const prefix = pattern.slice(0, pattern.indexOf("*"));
  return { pattern, exact: false, matches: (name) => name.startsWith(prefix) && re.test(name) };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function nearest(name: string, tools: readonly ToolDefinition[]): string {
  const prefix = name.split("__")[0] ?? "";
  const same = tools.filter((t) => t.connector === prefix).map((t) => t.name);
  if (same.length > 0)
    return ` (connector "${prefix}" provides: ${same.slice(0, 8).join(", ")}${same.length > 8 ? ", …" : ""})`;
  const connectors = [...new Set(tools.map((t) => t.connector))].sort();
  return connectors.length > 0
    ? ` (no connector "${prefix}"; connectors: ${connectors.join(", ")})`
    : " (no connectors are registered)";
}

/** The property schema at a dotted argument path, when the tool's schema describes it. */
function propertyAt(schema: JsonSchema, path: readonly string[]): JsonSchema | undefined {
  let cur: JsonSchema | undefined = schema;
  for (const seg of path) {
    const props: unknown = cur?.properties;
    if (typeof props !== "object" || props === null || !Object.hasOwn(props, seg)) return undefined;
    cur = (props as Record<string, JsonSchema>)[seg];
  }
  return cur;
}

function argNames(tool: ToolDefinition): string {
  const names = Object.keys(tool.inputSchema.properties ?? {});
  return names.length > 0 ? names.join(", ") : "none";
}

class ManifestCompiler {
  readonly problems: ConfigProblem[] = [];
  constructor(
    private readonly source: JsonSource,
    private readonly tools: readonly ToolDefinition[],
    private readonly byName: ReadonlyMap<string, ToolDefinition>,
  ) {}

  private problem(path: (string | number)[], message: string): void {
    this.problems.push(this.source.problem(path, message));
  }

  private matcher(pattern: string, path: (string | number)[], readOnly: boolean): ToolMatcher | undefined {
    const m = compileMatcher(pattern);
    if (m.exact) {
      const tool = this.byName.get(pattern);
      if (!tool) {
        this.problem(path, `no connector provides tool "${pattern}"${nearest(pattern, this.tools)}`);
        return undefined;
      }
      if (readOnly && !tool.annotations.readOnlyHint) {
        this.problem(path, `tool "${pattern}" is not read-only, but the grant says readOnly: true`);
        return undefined;
      }
      return m;
    }
    if (!this.tools.some((t) => m.matches(t.name) && (!readOnly || t.annotations.readOnlyHint))) {
      this.problem(
        path,
        `pattern "${pattern}" matches no${readOnly ? " read-only" : ""} tool${nearest(pattern, this.tools)}`,
      );
      return undefined;
    }
    return m;
  }

  grant(
    scope: string,
    entry: string | ToolGrantConfig,
    path: (string | number)[],
  ): CompiledGrant | undefined {
    const cfg: ToolGrantConfig = typeof entry === "string" ? { tool: entry } : entry;
    const toolPath = typeof entry === "string" ? path : [...path, "tool"];
    const readOnly = cfg.readOnly ?? false;
    const matcher = this.matcher(cfg.tool, toolPath, readOnly);
    if (!matcher) return undefined;
    const origin = `${this.source.file} ${path.map((p) => (typeof p === "number" ? `[${p}]` : p)).join("")}`;
    if (!matcher.exact) {
      for (const key of ["constraints", "bind", "approval"] as const) {
        if (cfg[key] !== undefined)
          this.problem([...path, key], `${key} need an exact tool name, not the pattern "${cfg.tool}"`);
      }
      return {
        scope,
        origin,
        matcher,
        readOnly,
        constraints: [],
        bind: [],
        ...(cfg.rateLimit ? { rateLimit: cfg.rateLimit } : {}),
      };
    }
    const tool = this.byName.get(cfg.tool)!;
    const constraints: CompiledConstraint[] = [];
    for (const [arg, c] of Object.entries(cfg.constraints ?? {})) {
      const at = [...path, "constraints", arg];
      const prop = propertyAt(tool.inputSchema, [arg]);
      if (!prop) {
        this.problem(at, `tool "${tool.name}" has no argument "${arg}" (its arguments: ${argNames(tool)})`);
        continue;
      }
      const compiled = compileConstraint(arg, c, prop);
      for (const p of compiled.problems) this.problem([...at, p.key], p.message);
      if (compiled.constraint) constraints.push(compiled.constraint);
    }
    const bind: BoundArgument[] = [];
    for (const [arg, claim] of Object.entries(cfg.bind ?? {})) {
      const at = [...path, "bind", arg];
      if (!propertyAt(tool.inputSchema, [arg])) {
        this.problem(at, `tool "${tool.name}" has no argument "${arg}" (its arguments: ${argNames(tool)})`);
      } else if (cfg.constraints && Object.hasOwn(cfg.constraints, arg)) {
        this.problem(
          at,
          `argument "${arg}" is both bound to a claim and constrained; a bound argument takes the claim's value, so drop its constraint`,
        );
      } else {
        bind.push({ arg, claim });
      }
    }
    let approval: CompiledGrant["approval"];
    if (cfg.approval) {
      const at = [...path, "approval", "when"];
      try {
        const condition = parseCondition(cfg.approval.when);
        for (const cmp of condition.comparisons) {
          const prop = propertyAt(tool.inputSchema, cmp.path);
          const shown = cmp.path.join(".");
          if (!prop) {
            this.problem(
              at,
              `condition reads "${shown}", but tool "${tool.name}" has no such argument (its arguments: ${argNames(tool)})`,
            );
          } else if (bind.some((b) => b.arg === cmp.path[0])) {
            // Bound values come from the token, so the rule would not depend on what the agent asks for.
            this.problem(at, `condition reads "${shown}", which is bound to a claim`);
          }
        }
        approval = { condition, ...(cfg.approval.reason ? { reason: cfg.approval.reason } : {}) };
      } catch (err) {
        if (!(err instanceof ConditionSyntaxError)) throw err;
        this.problem(at, `invalid approval condition: ${err.message}`);
      }
    }
    return {
      scope,
      origin,
      matcher,
      readOnly,
      constraints,
      bind,
      ...(cfg.rateLimit ? { rateLimit: cfg.rateLimit } : {}),
      ...(approval ? { approval } : {}),
    };
  }

  scope(m: ScopeManifest, hash: string): CompiledScope {
    const grants: CompiledGrant[] = [];
    const exactSeen = new Map<string, number>();
    m.tools.forEach((entry, i) => {
      const name = typeof entry === "string" ? entry : entry.tool;
      if (!name.includes("*")) {
        const first = exactSeen.get(name);
        if (first !== undefined) {
          this.problem(
            ["tools", i],
            `tool "${name}" is already granted at tools[${first}]; merge the two entries`,
          );
          return;
        }
        exactSeen.set(name, i);
      }
      const g = this.grant(m.name, entry, ["tools", i]);
      if (g) grants.push(g);
    });
    const deny: ToolMatcher[] = [];
    m.deny.forEach((pattern, i) => {
      const matcher = this.matcher(pattern, ["deny", i], false);
      if (matcher) deny.push(matcher);
    });
    return {
      name: m.name,
      description: m.description,
      file: this.source.file,
      hash,
      grants,
      deny,
      ...(m.rateLimit ? { rateLimit: m.rateLimit } : {}),
    };
  }
}

/**
 * Loads every `*.json` in `dir` as a scope manifest and checks it against the registered tools.
 * All problems in all files are raised together (ConfigError naming file, entry and line).
 */
export function loadScopeManifests(
  dir: string,
  tools: readonly ToolDefinition[],
  env: NodeJS.ProcessEnv = process.env,
): ScopeSet {
  let files: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    files = readdirSync(dir)
      .filter((f) => f.endsWith(".json") && !f.startsWith("."))
      .sort();
  } catch {
    throw new ConfigError([
      {
        file: displayPath(dir),
        path: "",
        message: "scopes directory not found (create it, or set paths.scopes)",
      },
    ]);
  }
  const byName = new Map(tools.map((t) => [t.name, t] as const));
  const problems: ConfigProblem[] = [];
  const scopes = new Map<string, CompiledScope>();
  const hashes: string[] = [];
  for (const f of files) {
    const file = join(dir, f);
    let loaded: ReturnType<typeof loadJsonFile<typeof scopeManifestSchema>>;
    try {
      loaded = loadJsonFile(file, scopeManifestSchema, env);
    } catch (err) {
      if (err instanceof ConfigError) {
        problems.push(...err.problems);
        continue;
      }
      throw err;
    }
    const { value, source } = loaded;
    const existing = scopes.get(value.name);
    if (existing) {
      problems.push(
        source.problem(
          ["name"],
          `scope "${value.name}" is already defined in ${existing.file}; scope names must be unique`,
        ),
      );
      continue;
    }
    const hash = sha256(canonicalize(value) ?? "");
    const compiler = new ManifestCompiler(source, tools, byName);
    const scope = compiler.scope(value, hash);
    problems.push(...compiler.problems);
    scopes.set(scope.name, scope);
    hashes.push(`${scope.name}:${hash}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { scopes, hash: sha256(hashes.sort().join("\n")) };
}
