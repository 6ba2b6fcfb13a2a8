import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
  type JWTVerifyOptions,
} from "jose";
import type { Logger } from "pino";
import type { JwtConfig } from "../config/identity-schema.js";
import { GatewayError, type Authenticator, type Identity } from "../core/index.js";
import { extractScopes } from "./identity.js";
import { candidateKeys, loadLocalKeys, type LocalKey } from "./jwt-keys.js";

/** Larger bearer tokens are refused before any parsing (they cost memory and crypto time). */
export const MAX_TOKEN_BYTES = 8192;
const MAX_SUBJECT_CHARS = 512;
/** Keys tried at most for one token when several match (local keys without kid, JWKS duplicates). */
const MAX_KEY_ATTEMPTS = 5;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface AuthenticatorOptions {
  /** The gateway's canonical resource URI; `jwt.audience` overrides it. */
  audience: string;
  logger: Logger;
}

function unauthenticated(message: string, cause?: unknown): GatewayError {
  return new GatewayError("UNAUTHENTICATED", message, cause === undefined ? {} : { cause });
}

function shown(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 37)}...` : text);
}

function isoFromEpoch(value: unknown): string {
  return typeof value === "number" && Number.isFinite(value)
    ? new Date(value * 1000).toISOString()
    : "an invalid time";
}

/** Turns jose's failures into messages that say what was wrong, never echoing the token. */
function explain(err: unknown, audience: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof errors.JWTExpired) {
    return unauthenticated(`token expired at ${isoFromEpoch(err.payload.exp)}`, err);
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    const missing = err.reason === "missing";
    switch (err.claim) {
      case "iss":
        return unauthenticated(
          missing ? 'token has no "iss" claim' : 'token "iss" is not the configured issuer',
          err,
        );
      case "aud":
        return unauthenticated(
          missing ? 'token has no "aud" claim' : `token "aud" does not include this gateway (${audience})`,
          err,
        );
      case "nbf":
        return unauthenticated(`token is not valid yet (nbf ${isoFromEpoch(err.payload.nbf)})`, err);
      case "exp":
        return unauthenticated(
          missing ? 'token has no "exp" claim; tokens must expire' : 'token "exp" is invalid',
          err,
        );
      case "sub":
        return unauthenticated('token has no "sub" claim', err);
      case "typ":
        return unauthenticated('token "typ" header is not the required type', err);
      default:
        return unauthenticated(`token claim ${shown(err.claim)} is invalid (${err.reason})`, err);
    }
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return unauthenticated("no verification key matches the token's kid and alg", err);
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return unauthenticated("token signature is invalid", err);
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated("token algorithm is not accepted", err);
  if (err instanceof errors.JWKSTimeout) {
    return new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      "the identity provider's JWKS did not answer in time; retry later",
      { cause: err },
    );
  }
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) {
    return unauthenticated(`token is malformed: ${err.message}`, err);
  }
  if (err instanceof errors.JWKSInvalid || err instanceof errors.JOSENotSupported) {
    return new GatewayError("UPSTREAM_UNAVAILABLE", "the identity provider's JWKS is unusable; retry later", {
      cause: err,
    });
  }
  if (err instanceof TypeError || (err instanceof errors.JOSEError && /fetch|status/i.test(err.message))) {
    // A key-type mismatch is a TypeError from the crypto layer; a failed fetch is one from fetch().
    if (/fetch|ECONN|status/i.test(String((err as Error).message))) {
      return new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        "cannot fetch the identity provider's JWKS; retry later",
        { cause: err },
      );
    }
    return unauthenticated("token signature is invalid", err);
  }
  return unauthenticated("token could not be verified", err);
}

/**
 * Bearer JWT verification with jose: remote JWKS (cached; an unknown `kid` triggers a refetch
 * after the cooldown, so key rotation needs no restart) or local PEM/JWK keys. Algorithms are
 * pinned; `iss`, `aud`, `exp` and `sub` are required; `nbf`/`exp` allow the configured skew.
 */
export function createAuthenticator(jwt: JwtConfig, opts: AuthenticatorOptions): Authenticator {
  const audience = jwt.audience ?? opts.audience;
  const algorithms = [...jwt.algorithms];
  const localKeys: LocalKey[] = jwt.keys ? loadLocalKeys(jwt.keys) : [];
  const remote = jwt.jwksUrl
    ? createRemoteJWKSet(new URL(jwt.jwksUrl), {
        cacheMaxAge: jwt.jwksCacheMaxAgeSec * 1000,
        cooldownDuration: jwt.jwksCooldownSec * 1000,
        timeoutDuration: jwt.jwksTimeoutMs,
      })
    : undefined;
  if (!remote && localKeys.length === 0) {
    throw new GatewayError("CONFIG_INVALID", "identity.jwt: set either jwksUrl or keys");
  }
  const verifyOptions: JWTVerifyOptions = {
    issuer: jwt.issuer,
    audience,
    algorithms,
    clockTolerance: jwt.clockSkewSec,
    requiredClaims: ["exp", "sub"],
    ...(jwt.requireTyp ? { typ: jwt.requireTyp } : {}),
  };

  async function verifyWithLocal(token: string, keys: LocalKey[]): Promise<JWTPayload> {
    let last: unknown;
    for (const k of keys.slice(0, MAX_KEY_ATTEMPTS)) {
      try {
        return (await jwtVerify(token, k.key, verifyOptions)).payload;
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
        last = err;
      }
    }
    throw last ?? new errors.JWKSNoMatchingKey();
  }

  async function verifyWithRemote(token: string): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, remote!, verifyOptions)).payload;
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      // Several JWKS keys share the kid/alg: jose hands them over to try one by one.
      let attempts = 0;
      for await (const key of err as unknown as AsyncIterable<CryptoKey>) {
        if (++attempts > MAX_KEY_ATTEMPTS) break;
        try {
          return (await jwtVerify(token, key, verifyOptions)).payload;
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new errors.JWSSignatureVerificationFailed();
    }
  }

  async function verify(token: string): Promise<Identity> {
    if (typeof token !== "string" || token.length === 0) throw unauthenticated("no bearer token");
    if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_BYTES) {
      throw unauthenticated(`bearer token is larger than ${MAX_TOKEN_BYTES / 1024} KiB`);
    }
    const parts = token.split(".").length;
    if (parts === 5) throw unauthenticated("encrypted tokens (JWE) are not accepted; send a signed JWT");
    if (!COMPACT_JWS.test(token)) {
      throw unauthenticated("bearer token is not a JWT (expected three base64url parts separated by dots)");
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch (err) {
      throw unauthenticated("token header is not valid base64url-encoded JSON", err);
    }
    const alg = header.alg;
    if (typeof alg !== "string" || !algorithms.includes(alg as (typeof algorithms)[number])) {
      throw unauthenticated(
        `token algorithm ${shown(alg ?? "missing")} is not accepted (accepted: ${algorithms.join(", ")})`,
      );
    }
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    let payload: JWTPayload;
    try {
      const local = candidateKeys(localKeys, alg, kid);
      if (local.length > 0) payload = await verifyWithLocal(token, local);
      else if (remote) payload = await verifyWithRemote(token);
      else
        throw unauthenticated(
          `no configured key can verify an ${alg} token${kid ? ` with kid ${shown(kid)}` : ""}`,
        );
    } catch (err) {
      const e = explain(err, audience);
      opts.logger.debug({ reason: e.message, alg, kid }, "bearer token refused");
      throw e;
    }
    const sub = payload.sub;
    if (typeof sub !== "string" || sub.trim() === "") throw unauthenticated('token has no "sub" claim');
    if (sub.length > MAX_SUBJECT_CHARS)
      throw unauthenticated(`token "sub" is longer than ${MAX_SUBJECT_CHARS} characters`);
    const clientId =
      typeof payload.client_id === "string"
        ? payload.client_id
        : typeof payload.azp === "string"
          ? payload.azp
          : undefined;
    return {
      subject: sub,
      ...(clientId ? { clientId } : {}),
      ...(typeof payload.iss === "string" ? { issuer: payload.iss } : {}),
      scopes: extractScopes(payload, jwt),
      claims: payload,
      source: "jwt",
    };
  }

  return { verify };
}
