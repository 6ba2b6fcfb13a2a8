import { z } from "zod";

/**
 * How callers are identified. HTTP callers present a bearer JWT checked against `jwt`; stdio
 * callers use `stdio` (a token from an environment variable, verified the same way, or a named
 * local identity for single-user desktop use).
 */
const localIdentitySchema = z
  .object({
    subject: z.string().min(1).describe("Name recorded as the caller in audit records."),
    scopes: z.array(z.string().min(1)).describe("Scope manifest names this identity holds."),
    claims: z.record(z.string(), z.unknown()).optional().describe("Claims for claim-bound arguments."),
  })
  .strict();

export const jwtSchema = z
  .object({
    issuer: z.string().min(1).describe("Expected `iss` claim."),
    audience: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Expected `aud` claim; defaults to the gateway's canonical resource URI (transports.http.publicUrl).",
      ),
    jwksUrl: z.url().optional().describe("Remote JWKS endpoint (cached; refreshed on an unknown `kid`)."),
    keys: z
      .array(z.union([z.string().min(1), z.record(z.string(), z.unknown())]))
      .optional()
      .describe("Local verification keys: PEM strings (SPKI) or JWK objects. Use `${ENV}` for PEM text."),
    algorithms: z
      .array(
        z.enum(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]),
      )
      .min(1)
      .default(["RS256", "ES256", "EdDSA"])
      .describe("Accepted signing algorithms, pinned (never `none`, never HMAC)."),
    clockSkewSec: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(30)
      .describe("Allowed clock skew for exp/nbf, in seconds."),
    requireTyp: z.string().optional().describe("Required `typ` header, e.g. `at+jwt`."),
    jwksCacheMaxAgeSec: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(600)
      .describe("How long fetched JWKS keys are used before they are fetched again, in seconds."),
    jwksCooldownSec: z
      .number()
      .min(0)
      .max(3600)
      .default(30)
      .describe(
        "After a fetch, how long a token with an unknown `kid` waits before it may trigger another fetch, in seconds (bounds refetch floods).",
      ),
    jwksTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(60_000)
      .default(5000)
      .describe("Time budget for fetching the JWKS, in milliseconds."),
    scopeClaims: z
      .array(z.string().min(1))
      .default(["scope", "scp"])
      .describe(
        "Claims that carry scopes: space-separated strings or arrays (e.g. scope, scp, roles, groups).",
      ),
    scopeMap: z
      .record(z.string(), z.union([z.string(), z.array(z.string())]))
      .optional()
      .describe("Maps claim values to scope manifest names; unmapped values are used as they are."),
  })
  .strict()
  .refine((v) => v.jwksUrl !== undefined || (v.keys !== undefined && v.keys.length > 0), {
    message: "set either jwksUrl or keys",
  });

const rolesSchema = z
  .object({
    admin: z
      .string()
      .min(1)
      .default("admin")
      .describe("Scope that guards /admin/* (connectors, scopes, reloads)."),
    approver: z
      .string()
      .min(1)
      .default("approver")
      .describe("Scope whose holders list, approve and deny parked calls (never their own)."),
    auditor: z
      .string()
      .min(1)
      .default("auditor")
      .describe("Scope that guards /audit/* (query, export, proofs)."),
  })
  .strict();

const approvalsSchema = z
  .object({
    file: z
      .string()
      .min(1)
      .default("approvals.db")
      .describe("SQLite file of approval state, relative to paths.audit."),
    ttlSec: z
      .number()
      .int()
      .min(10)
      .max(30 * 86_400)
      .default(3600)
      .describe(
        "Seconds a request waits for a decision; an approval must be used, and a denial stands, for this long after the decision.",
      ),
    maxPendingPerIdentity: z
      .number()
      .int()
      .positive()
      .max(10_000)
      .default(100)
      .describe("Pending requests one identity may have at once."),
  })
  .strict();

const rateLimitStoreSchema = z
  .object({
    redisUrl: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Redis URL (`redis://…`, use `${ENV}` for passwords) to share rate limits across replicas; default: in memory.",
      ),
    keyPrefix: z.string().default("portcullis:rl:").describe("Prefix of every Redis key."),
  })
  .strict();

export const identitySchema = z
  .object({
    jwt: jwtSchema
      .optional()
      .describe("Bearer JWT verification for HTTP callers (and for stdio with tokenEnv)."),
    tokenEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/)
      .optional()
      .describe("Environment variable holding a JWT for the stdio caller, verified like HTTP tokens."),
    local: localIdentitySchema
      .extend({
        overHttp: z
          .boolean()
          .default(false)
          .describe(
            "Also use this identity for HTTP requests without a token. Refused unless the HTTP transport binds a loopback address; for single-user development only.",
          ),
      })
      .strict()
      .optional()
      .describe("A named local identity for single-user desktop use (stdio)."),
    roles: rolesSchema
      .prefault({})
      .describe("Scope names that unlock the admin, approver and auditor surfaces."),
    approvals: approvalsSchema
      .prefault({})
      .describe("Human approval of calls parked by scope approval rules."),
    rateLimits: rateLimitStoreSchema.prefault({}).describe("Where rate-limit state lives."),
  })
  .strict();

export type IdentityConfig = z.infer<typeof identitySchema>;
export type JwtConfig = z.infer<typeof jwtSchema>;
export type LocalIdentityConfig = NonNullable<IdentityConfig["local"]>;
export type RolesConfig = IdentityConfig["roles"];
export type ApprovalsConfig = IdentityConfig["approvals"];
export type RateLimitStoreConfig = IdentityConfig["rateLimits"];
