import { createHash } from "node:crypto";
import type { Logger } from "pino";
import {
  GatewayError,
  type CallPolicy,
  type Identity,
  type JsonSchema,
  type ObjectJsonSchema,
  type ToolDefinition,
} from "../core/index.js";
import type { ApprovalStore } from "./approvals.js";
import { narrowProperty } from "./constraints.js";
import { claimValue } from "./identity.js";
import type { CompiledGrant, CompiledScope, ScopeSet } from "./manifests.js";
import type { ConstraintConfig } from "./manifest-schema.js";
import { MemoryRateLimiter, type Bucket, type RateLimiter } from "./rate-limit.js";

export interface IgnoredArgumentsEvent {
  readonly identity: Identity;
  readonly tool: string;
  /** Names of claim-bound arguments the agent tried to set; their values are never kept. */
  readonly arguments: readonly string[];
}

export interface CallPolicyOptions {
  logger: Logger;
  /** Default: in-memory token buckets (single machine). */
  rateLimiter?: RateLimiter;
  /** Required when any manifest has an approval rule. */
  approvals?: ApprovalStore;
  /** Told whenever an agent sent a value for a claim-bound argument (the value was ignored). */
  onIgnoredArguments?: (event: IgnoredArgumentsEvent) => void;
  /** Distinct scope combinations whose evaluations are cached (default 1024). */
  maxCachedScopeSets?: number;
}

/** The CallPolicy plus what tools/list needs. */
export interface ScopePolicy extends CallPolicy {
  readonly scopeSet: ScopeSet;
  /** The input schema this identity sees: narrowed enums and bounds, bound arguments removed. */
  visibleSchema(identity: Identity, tool: ToolDefinition): ObjectJsonSchema;
  /** The tools this identity may see, in the given order. */
  visibleTools(identity: Identity, tools: readonly ToolDefinition[]): ToolDefinition[];
  /** Names of the arguments this identity's grant fills from its token (not shown, not settable). */
  boundArguments(identity: Identity, tool: ToolDefinition): readonly string[];
}

/** The one message for unknown and hidden tools alike, so a hidden tool's existence never leaks. */
export function unknownToolError(name: string): GatewayError {
  return new GatewayError("TOOL_NOT_FOUND", `unknown tool: ${name.slice(0, 128)}`);
}

/** What the held scopes decide for one tool. */
interface Effective {
  /** At most one grant per scope: an exact entry wins over patterns within its manifest. */
  readonly grants: readonly CompiledGrant[];
  readonly manifestHash: string;
  schema?: ObjectJsonSchema;
  bound?: readonly string[];
}

/** A distinct combination of held scopes, with its per-tool decisions cached. */
interface ScopeView {
  readonly key: string;
  readonly scopes: readonly CompiledScope[];
  readonly tools: WeakMap<ToolDefinition, Effective | null>;
  /** Manifest digests by granting-scope combination (few per view; hashing per tool would dominate tools/list). */
  readonly hashes: Map<string, string>;
}

interface Selection {
  readonly grant: CompiledGrant;
  readonly scope: CompiledScope;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Rate-limit keys by identity object: a session presents the same object on every call. */
const identityKeys = new WeakMap<Identity, string>();

function identityKey(identity: Identity): string {
  let key = identityKeys.get(identity);
  if (key === undefined) {
    key = sha256(`${identity.issuer ?? ""}\n${identity.subject}`).slice(0, 32);
    identityKeys.set(identity, key);
  }
  return key;
}

function typesOf(schema: JsonSchema | undefined): Set<string> | undefined {
  const t = schema?.type;
  if (typeof t === "string") return new Set([t]);
  if (Array.isArray(t)) return new Set(t.filter((x): x is string => typeof x === "string"));
  return undefined;
}

/** A claim's value in the shape the argument takes, or undefined when it cannot take it. */
function coerceClaim(value: unknown, property: JsonSchema | undefined): unknown {
  const types = typesOf(property);
  if (value === undefined || value === null) return undefined;
  if (!types) return value;
  if (typeof value === "string") {
    if (types.has("string")) return value;
    if ((types.has("integer") || types.has("number")) && /^-?\d+(\.\d+)?$/.test(value)) {
      const n = Number(value);
      if (types.has("integer") ? Number.isSafeInteger(n) : Number.isFinite(n)) return n;
    }
    return undefined;
  }
  if (typeof value === "number") {
    if (types.has("number") || (types.has("integer") && Number.isSafeInteger(value))) return value;
    if (types.has("string")) return String(value);
    return undefined;
  }
  if (typeof value === "boolean") return types.has("boolean") ? value : undefined;
  if (Array.isArray(value)) return types.has("array") ? value : undefined;
  return types.has("object") ? value : undefined;
}

class Policy implements ScopePolicy {
  private readonly views = new Map<string, ScopeView>();
  private readonly byIdentity = new WeakMap<Identity, ScopeView>();
  /** The grant chosen in `constrain`, keyed by the arguments object it returned. */
  private readonly selections = new WeakMap<object, Selection>();
  private readonly limiter: RateLimiter;
  private readonly maxViews: number;

  constructor(
    readonly scopeSet: ScopeSet,
    private readonly opts: CallPolicyOptions,
  ) {
    this.limiter = opts.rateLimiter ?? new MemoryRateLimiter();
    this.maxViews = opts.maxCachedScopeSets ?? 1024;
    if (!opts.approvals) {
      for (const s of scopeSet.scopes.values()) {
        const g = s.grants.find((x) => x.approval);
        if (g) {
          throw new GatewayError(
            "CONFIG_INVALID",
            `${g.origin} has an approval rule, but no approval store is configured`,
          );
        }
      }
    }
  }

  private view(identity: Identity): ScopeView {
    const cached = this.byIdentity.get(identity);
    if (cached) return cached;
    const names = [...new Set(identity.scopes)].filter((s) => this.scopeSet.scopes.has(s)).sort();
    const key = names.join("\n");
    let view = this.views.get(key);
    if (view) {
      // Refresh recency: the map's insertion order is the eviction order.
      this.views.delete(key);
    } else {
      view = {
        key,
        scopes: names.map((n) => this.scopeSet.scopes.get(n)!),
        tools: new WeakMap(),
        hashes: new Map(),
      };
      if (this.views.size >= this.maxViews) this.views.delete(this.views.keys().next().value!);
    }
    this.views.set(key, view);
    this.byIdentity.set(identity, view);
    return view;
  }

  private effective(identity: Identity, tool: ToolDefinition): Effective | null {
    const view = this.view(identity);
    const cached = view.tools.get(tool);
    if (cached !== undefined) return cached;
    let result: Effective | null = null;
    if (!view.scopes.some((s) => s.deny.some((d) => d.matches(tool.name)))) {
      const grants: CompiledGrant[] = [];
      for (const s of view.scopes) {
        let pick: CompiledGrant | undefined;
        for (const g of s.grants) {
          if (!g.matcher.matches(tool.name) || (g.readOnly && !tool.annotations.readOnlyHint)) continue;
          if (g.matcher.exact) {
            pick = g;
            break;
          }
          pick ??= g;
        }
        if (pick) grants.push(pick);
      }
      if (grants.length > 0) {
        const key = grants.map((g) => g.scope).join("\n");
        let manifestHash = view.hashes.get(key);
        if (manifestHash === undefined) {
          manifestHash = sha256(
            grants.map((g) => `${g.scope}:${this.scopeSet.scopes.get(g.scope)!.hash}`).join("\n"),
          );
          view.hashes.set(key, manifestHash);
        }
        result = { grants, manifestHash };
      }
    }
    view.tools.set(tool, result);
    return result;
  }

  private require(identity: Identity, tool: ToolDefinition): Effective {
    const eff = this.effective(identity, tool);
    if (!eff) throw unknownToolError(tool.name);
    return eff;
  }

  canSee(identity: Identity, tool: ToolDefinition): boolean {
    return this.effective(identity, tool) !== null;
  }

  visibleTools(identity: Identity, tools: readonly ToolDefinition[]): ToolDefinition[] {
    return tools.filter((t) => this.effective(identity, t) !== null);
  }

  manifestHash(identity: Identity, tool: ToolDefinition): string | undefined {
    return this.effective(identity, tool)?.manifestHash;
  }

  boundArguments(identity: Identity, tool: ToolDefinition): readonly string[] {
    const eff = this.require(identity, tool);
    eff.bound ??= this.boundInAll(eff);
    return eff.bound;
  }

  /** An argument is hidden only when every granting scope binds it; otherwise the agent may set it. */
  private boundInAll(eff: Effective): string[] {
    const [first, ...rest] = eff.grants;
    if (!first) return [];
    return first.bind.map((b) => b.arg).filter((arg) => rest.every((g) => g.bind.some((b) => b.arg === arg)));
  }

  visibleSchema(identity: Identity, tool: ToolDefinition): ObjectJsonSchema {
    const eff = this.require(identity, tool);
    if (eff.schema) return eff.schema;
    eff.schema = this.buildSchema(eff, tool);
    return eff.schema;
  }

  private buildSchema(eff: Effective, tool: ToolDefinition): ObjectJsonSchema {
    const base = tool.inputSchema;
    if (eff.grants.some((g) => g.constraints.length === 0 && g.bind.length === 0)) return base;
    const bound = new Set(this.boundInAll(eff));
    const properties: Record<string, JsonSchema> = {};
    for (const [name, prop] of Object.entries(base.properties ?? {})) {
      if (bound.has(name)) continue;
      const perGrant = eff.grants.map((g) => g.constraints.find((c) => c.arg === name)?.config);
      const narrowed = perGrant.every((c): c is ConstraintConfig => c !== undefined)
        ? narrowProperty(prop, perGrant)
        : prop;
      properties[name] = narrowed;
    }
    const required = new Set((base.required ?? []).filter((r) => !bound.has(r)));
    // A constrained argument must be sent unless marked optional, so tools/list says so too.
    for (const name of Object.keys(properties)) {
      if (eff.grants.every((g) => g.constraints.some((c) => c.arg === name && !c.config.optional)))
        required.add(name);
    }
    const schema: ObjectJsonSchema = { ...base, type: "object", properties };
    if (required.size > 0) schema.required = [...required];
    else delete schema.required;
    if (bound.size > 0 && base.additionalProperties === false) {
      // The agent is validated against this schema. A value it sends for a bound argument must
      // reach constrain() to be ignored and reported, not be refused as an unknown argument.
      const allowed = [...bound].map((b) => `^${b.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")}$`);
      schema.patternProperties = {
        ...(typeof base.patternProperties === "object" && base.patternProperties !== null
          ? base.patternProperties
          : {}),
        ...Object.fromEntries(allowed.map((p) => [p, {}])),
      };
    }
    return Object.freeze(schema);
  }

  /** Why `grant` refuses `args`, or undefined when it admits them. */
  private refusal(
    identity: Identity,
    tool: ToolDefinition,
    grant: CompiledGrant,
    args: Record<string, unknown>,
  ): string | undefined {
    for (const c of grant.constraints) {
      const present = Object.hasOwn(args, c.arg) && args[c.arg] !== undefined;
      if (!present) {
        if (c.config.optional) continue;
        return `argument ${JSON.stringify(c.arg)} is required by your scope "${grant.scope}"`;
      }
      const why = c.check(args[c.arg]);
      if (why) return `${why} (scope "${grant.scope}")`;
    }
    for (const b of grant.bind) {
      const value = coerceClaim(claimValue(identity.claims, b.claim), tool.inputSchema.properties?.[b.arg]);
      if (value === undefined) {
        return `your token has no usable "${b.claim}" claim, which scope "${grant.scope}" needs for argument ${JSON.stringify(b.arg)}`;
      }
    }
    return undefined;
  }

  /**
   * Picks the grant that admits the call. Scopes combine by union, so any admitting grant will
   * do; among them the least restrictive wins: no approval needed, then not overriding a value
   * the agent set, then scope name order (deterministic).
   */
  private select(
    identity: Identity,
    tool: ToolDefinition,
    eff: Effective,
    args: Record<string, unknown>,
  ): Selection {
    const admitting: CompiledGrant[] = [];
    const reasons: string[] = [];
    for (const g of eff.grants) {
      const why = this.refusal(identity, tool, g, args);
      if (why) reasons.push(why);
      else admitting.push(g);
    }
    if (admitting.length === 0) {
      throw new GatewayError("DENIED_CONSTRAINT", `${tool.name}: ${reasons.join("; ")}`, {
        details: { violations: reasons },
      });
    }
    const rank = (g: CompiledGrant): number =>
      (g.approval?.condition.test(args) ? 2 : 0) + (g.bind.some((b) => Object.hasOwn(args, b.arg)) ? 1 : 0);
    let best = admitting[0]!;
    for (const g of admitting.slice(1)) if (rank(g) < rank(best)) best = g;
    return { grant: best, scope: this.scopeSet.scopes.get(best.scope)! };
  }

  constrain(
    identity: Identity,
    tool: ToolDefinition,
    args: Record<string, unknown>,
  ): Record<string, unknown> {
    const eff = this.require(identity, tool);
    const selection = this.select(identity, tool, eff, args);
    const out: Record<string, unknown> = { ...args };
    const ignored: string[] = [];
    for (const b of selection.grant.bind) {
      if (Object.hasOwn(args, b.arg)) ignored.push(b.arg);
      out[b.arg] = coerceClaim(claimValue(identity.claims, b.claim), tool.inputSchema.properties?.[b.arg]);
    }
    if (ignored.length > 0) {
      this.opts.logger.warn(
        { tool: tool.name, subject: identity.subject, ignored },
        "agent sent values for claim-bound arguments; they were ignored",
      );
      this.opts.onIgnoredArguments?.({ identity, tool: tool.name, arguments: ignored });
    }
    this.selections.set(out, selection);
    return out;
  }

  private selectionFor(identity: Identity, tool: ToolDefinition, args: Record<string, unknown>): Selection {
    return this.selections.get(args) ?? this.select(identity, tool, this.require(identity, tool), args);
  }

  async admit(identity: Identity, tool: ToolDefinition, args: Record<string, unknown>): Promise<void> {
    const { grant, scope } = this.selectionFor(identity, tool, args);
    if (!grant.rateLimit && !scope.rateLimit) return;
    const who = identityKey(identity);
    const buckets: (Bucket & { what: string; limitText: string })[] = [];
    if (grant.rateLimit) {
      const r = grant.rateLimit;
      buckets.push({
        key: `t|${scope.name}|${tool.name}|${who}`,
        capacity: r.burst ?? r.limit,
        limit: r.limit,
        windowMs: r.windowSec * 1000,
        what: `tool ${tool.name}`,
        limitText: `${r.limit} calls per ${r.windowSec}s`,
      });
    }
    if (scope.rateLimit) {
      const r = scope.rateLimit;
      buckets.push({
        key: `s|${scope.name}|${who}`,
        capacity: r.burst ?? r.limit,
        limit: r.limit,
        windowMs: r.windowSec * 1000,
        what: `scope "${scope.name}"`,
        limitText: `${r.limit} calls per ${r.windowSec}s across its tools`,
      });
    }
    if (buckets.length === 0) return;
    const result = await this.limiter.take(buckets);
    if (result.allowed) return;
    const b = buckets[result.blocked ?? 0]!;
    const retryAt = new Date(Date.now() + result.retryAfterMs).toISOString();
    throw new GatewayError(
      "DENIED_RATE_LIMIT",
      `rate limit for ${b.what} reached (${b.limitText}); retry after ${(result.retryAfterMs / 1000).toFixed(1)}s (at ${retryAt})`,
      {
        details: {
          retryAfterMs: result.retryAfterMs,
          retryAt,
          scope: scope.name,
          limit: b.limit,
          windowMs: b.windowMs,
        },
      },
    );
  }

  async approve(
    identity: Identity,
    tool: ToolDefinition,
    args: Record<string, unknown>,
    callId: string,
  ): Promise<void> {
    const { grant } = this.selectionFor(identity, tool, args);
    if (!grant.approval || !grant.approval.condition.test(args)) return;
    // The constructor refused approval rules without a store.
    await this.opts.approvals!.require({
      identity,
      tool: tool.name,
      arguments: args,
      rule: grant.approval.condition.source,
      ...(grant.approval.reason ? { reason: grant.approval.reason } : {}),
      scope: grant.scope,
      callId,
    });
  }
}

/** Deny by default; union of held scopes; an explicit deny in any held scope wins. */
export function createCallPolicy(scopes: ScopeSet, opts: CallPolicyOptions): ScopePolicy {
  return new Policy(scopes, opts);
}
