import type { Identity } from "../core/index.js";
import { GatewayError } from "../core/index.js";
import type { JwtConfig, LocalIdentityConfig } from "../config/identity-schema.js";

/** Most scope values taken from one token; more is a malformed or hostile token. */
const MAX_SCOPE_VALUES = 256;
const MAX_SCOPE_CHARS = 256;

/**
 * A claim by name. Names are tried literally first (URL-shaped claim names contain dots), then
 * as a dotted path into nested objects (Keycloak's `realm_access.roles`).
 */
export function claimValue(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  let cur: unknown = claims;
  for (const seg of name.split(".")) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, seg))
      return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * Scope manifest names carried by the token: every configured claim, as a space-separated string
 * or an array of strings, mapped through `scopeMap` (a mapped value is replaced by its targets;
 * an unmapped value is kept as it is). Sorted and de-duplicated.
 */
export function extractScopes(
  claims: Readonly<Record<string, unknown>>,
  cfg: Pick<JwtConfig, "scopeClaims" | "scopeMap">,
): string[] {
  const raw: string[] = [];
  for (const claim of cfg.scopeClaims) {
    const v = claimValue(claims, claim);
    if (typeof v === "string") raw.push(...v.split(/\s+/));
    else if (Array.isArray(v)) for (const item of v) if (typeof item === "string") raw.push(item);
  }
  const out = new Set<string>();
  for (const value of raw) {
    if (value === "" || value.length > MAX_SCOPE_CHARS) continue;
    const mapped = cfg.scopeMap && Object.hasOwn(cfg.scopeMap, value) ? cfg.scopeMap[value] : undefined;
    if (mapped === undefined) out.add(value);
    else for (const m of typeof mapped === "string" ? [mapped] : mapped) out.add(m);
    if (out.size > MAX_SCOPE_VALUES) {
      throw new GatewayError("UNAUTHENTICATED", `token carries more than ${MAX_SCOPE_VALUES} scope values`);
    }
  }
  return [...out].sort();
}

/** The configured single-user identity (stdio desktop use). */
export function localIdentity(cfg: LocalIdentityConfig): Identity {
  return {
    subject: cfg.subject,
    scopes: [...new Set(cfg.scopes)].sort(),
    claims: { sub: cfg.subject, ...(cfg.claims ?? {}) },
    source: "local",
  };
}
