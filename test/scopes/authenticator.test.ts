import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jwtSchema, type JwtConfig } from "../../src/config/identity-schema.js";
import { GatewayError, type Authenticator } from "../../src/core/index.js";
import { createAuthenticator, MAX_TOKEN_BYTES } from "../../src/scopes/authenticator.js";
import { testLogger } from "../helpers/logger.js";
import { AUDIENCE, b64url, ISSUER, JwksServer, makeKey, sign, type TestKey } from "./jwt-fixtures.js";

function jwtConfig(extra: Record<string, unknown>): JwtConfig {
  return jwtSchema.parse({ issuer: ISSUER, ...extra });
}

async function rejection(auth: Authenticator, token: string): Promise<GatewayError> {
  try {
    await auth.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    const e = err as GatewayError;
    // The 401 body shows this message: it must never echo the token.
    if (token.length > 8) expect(e.message).not.toContain(token);
    return e;
  }
  throw new Error("token was accepted");
}

describe("createAuthenticator with a remote JWKS", () => {
  const jwks = new JwksServer();
  let rs: TestKey;
  let es: TestKey;
  let ed: TestKey;
  let auth: Authenticator;

  beforeAll(async () => {
    [rs, es, ed] = await Promise.all([
      makeKey("RS256", "rs-1"),
      makeKey("ES256", "es-1"),
      makeKey("EdDSA", "ed-1"),
    ]);
    jwks.keys = [rs.publicJwk, es.publicJwk, ed.publicJwk];
    await jwks.start();
    auth = createAuthenticator(
      jwtConfig({
        jwksUrl: jwks.url,
        jwksCooldownSec: 0,
        scopeClaims: ["scope", "scp", "realm_access.roles"],
        scopeMap: { "orders.read": "support-agent", "ops-team": ["order-ops", "support-agent"] },
      }),
      { audience: AUDIENCE, logger: testLogger },
    );
  });
  afterAll(() => jwks.close());

  it.each(["RS256", "ES256", "EdDSA"] as const)("accepts a %s token and builds the identity", async (alg) => {
    const key = { RS256: rs, ES256: es, EdDSA: ed }[alg];
    const identity = await auth.verify(
      await sign(key, {
        payload: { scope: "orders.read extra", client_id: "agent-app", customer_id: "C-7" },
      }),
    );
    expect(identity).toMatchObject({
      subject: "agent-1",
      clientId: "agent-app",
      issuer: ISSUER,
      scopes: ["extra", "support-agent"],
      source: "jwt",
    });
    expect(identity.claims.customer_id).toBe("C-7");
  });

  it("reads scopes from arrays and nested claims and maps one value to several scopes", async () => {
    const identity = await auth.verify(
      await sign(rs, { payload: { scp: ["a", "b", 7], realm_access: { roles: ["ops-team"] } } }),
    );
    expect(identity.scopes).toEqual(["a", "b", "order-ops", "support-agent"]);
  });

  it("accepts a token expired within the configured clock skew", async () => {
    await expect(auth.verify(await sign(rs, { expiresIn: -10 }))).resolves.toMatchObject({
      subject: "agent-1",
    });
  });

  it("follows key rotation without a restart: new kid fetched, removed kid refused", async () => {
    const before = jwks.fetches;
    const rotated = await makeKey("RS256", "rs-2");
    jwks.keys = [rotated.publicJwk, es.publicJwk, ed.publicJwk];
    await expect(auth.verify(await sign(rotated))).resolves.toMatchObject({ subject: "agent-1" });
    expect(jwks.fetches).toBeGreaterThan(before);
    const e = await rejection(auth, await sign(rs));
    expect(e.code).toBe("UNAUTHENTICATED");
    expect(e.message).toBe("no verification key matches the token's kid and alg");
    jwks.keys = [rs.publicJwk, es.publicJwk, ed.publicJwk];
  });

  describe("refuses, each with UNAUTHENTICATED and a precise message", () => {
    const cases: [string, () => Promise<string>, RegExp][] = [
      [
        "alg none",
        async () =>
          `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "x", iss: ISSUER, aud: AUDIENCE, exp: 9e9 })}.`,
        /^token algorithm "none" is not accepted \(accepted: RS256, ES256, EdDSA\)$/,
      ],
      [
        "HS256 signed with the public key (RS/HS confusion)",
        async () =>
          new SignJWT({ sub: "x" })
            .setProtectedHeader({ alg: "HS256", kid: "rs-1" })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .setExpirationTime("5m")
            .sign(new TextEncoder().encode(rs.publicPem)),
        /^token algorithm "HS256" is not accepted/,
      ],
      [
        "wrong iss",
        () => sign(rs, { issuer: "https://evil.example" }),
        /^token "iss" is not the configured issuer$/,
      ],
      ["missing iss", () => sign(rs, { issuer: null }), /^token has no "iss" claim$/],
      [
        "wrong aud",
        () => sign(es, { audience: "https://other.example/mcp" }),
        /^token "aud" does not include this gateway \(https:\/\/gateway\.test\.example\/mcp\)$/,
      ],
      ["expired", () => sign(ed, { expiresIn: -3600 }), /^token expired at \d{4}-\d\d-\d\dT/],
      ["no exp", () => sign(rs, { expiresIn: null }), /^token has no "exp" claim; tokens must expire$/],
      ["not yet valid", () => sign(rs, { notBefore: 3600 }), /^token is not valid yet \(nbf \d{4}-/],
      [
        "unknown kid",
        async () => sign({ ...(await makeKey("ES256", "ghost")) }),
        /^no verification key matches the token's kid and alg$/,
      ],
      [
        "a kid the JWKS has, signed by another key",
        async () => sign({ ...(await makeKey("RS256", "x")), kid: "rs-1" }),
        /^token signature is invalid$/,
      ],
      ["malformed: not a JWT", async () => "definitely-not-a-token", /^bearer token is not a JWT/],
      ["malformed: two parts", async () => "abc.def", /^bearer token is not a JWT/],
      [
        "malformed: header not JSON",
        async () => `${b64url("{nope")}.${b64url({})}.c2ln`,
        /^token header is not valid base64url-encoded JSON$/,
      ],
      [
        "malformed: payload not JSON",
        async () => {
          const good = await sign(rs);
          const [h, , s] = good.split(".");
          return `${h}.${b64url("not json")}.${s}`;
        },
        /^token (is malformed|signature is invalid)/,
      ],
      ["JWE", async () => "a.b.c.d.e", /^encrypted tokens \(JWE\) are not accepted/],
      ["missing sub", () => sign(rs, { subject: null }), /^token has no "sub" claim$/],
      ["empty sub", () => sign(rs, { subject: "  " }), /^token has no "sub" claim$/],
      [
        "oversized",
        () => sign(rs, { payload: { pad: "x".repeat(MAX_TOKEN_BYTES) } }),
        /^bearer token is larger than 8 KiB$/,
      ],
      ["empty", async () => "", /^no bearer token$/],
    ];
    it.each(cases)("%s", async (_name, make, message) => {
      const e = await rejection(auth, await make());
      expect(e.code).toBe("UNAUTHENTICATED");
      expect(e.message).toMatch(message);
    });

    it("stays healthy after every refusal", async () => {
      await expect(auth.verify(await sign(es))).resolves.toMatchObject({ subject: "agent-1" });
    });
  });

  it("requires typ when configured", async () => {
    const strict = createAuthenticator(jwtConfig({ jwksUrl: jwks.url, requireTyp: "at+jwt" }), {
      audience: AUDIENCE,
      logger: testLogger,
    });
    await expect(strict.verify(await sign(rs, { header: { typ: "at+jwt" } }))).resolves.toMatchObject({
      subject: "agent-1",
    });
    const e = await rejection(strict, await sign(rs, { header: { typ: "JWT" } }));
    expect(e.message).toBe('token "typ" header is not the required type');
  });

  it("answers UPSTREAM_UNAVAILABLE, not 401, when the JWKS cannot be fetched", async () => {
    const down = new JwksServer();
    await down.start();
    const url = down.url;
    await down.close();
    const a = createAuthenticator(jwtConfig({ jwksUrl: url }), { audience: AUDIENCE, logger: testLogger });
    const e = await rejection(a, await sign(rs));
    expect(e.code).toBe("UPSTREAM_UNAVAILABLE");
  });
});

describe("createAuthenticator with local keys", () => {
  it("verifies with a PEM key (no kid) and a JWK, and pins the algorithm to the key type", async () => {
    const [rs, es] = await Promise.all([makeKey("RS256", "rs-local"), makeKey("ES256", "es-local")]);
    const auth = createAuthenticator(jwtConfig({ keys: [rs.publicPem, es.publicJwk], audience: "urn:gw" }), {
      audience: AUDIENCE,
      logger: testLogger,
    });
    await expect(auth.verify(await sign(rs, { audience: "urn:gw" }))).resolves.toMatchObject({
      subject: "agent-1",
    });
    await expect(auth.verify(await sign(es, { audience: "urn:gw" }))).resolves.toMatchObject({
      subject: "agent-1",
    });
    const other = await makeKey("EdDSA", "ed-x");
    const e = await rejection(auth, await sign(other, { audience: "urn:gw" }));
    expect(e.message).toBe('no configured key can verify an EdDSA token with kid "ed-x"');
    const forged = await makeKey("RS256", "rs-local");
    expect((await rejection(auth, await sign(forged, { audience: "urn:gw" }))).message).toBe(
      "token signature is invalid",
    );
  });

  it("refuses private and symmetric keys in config", async () => {
    const { privateKey } = await import("jose").then((j) =>
      j.generateKeyPair("ES256", { extractable: true }),
    );
    const privateJwk = await import("jose").then((j) => j.exportJWK(privateKey));
    expect(() =>
      createAuthenticator(jwtConfig({ keys: [privateJwk] }), { audience: AUDIENCE, logger: testLogger }),
    ).toThrow(/identity\.jwt\.keys\[0\]: is a private JWK/);
    expect(() =>
      createAuthenticator(jwtConfig({ keys: [{ kty: "oct", k: "c2VjcmV0" }] }), {
        audience: AUDIENCE,
        logger: testLogger,
      }),
    ).toThrow(/symmetric \(oct\) key; HMAC tokens are never accepted/);
    expect(() =>
      createAuthenticator(
        jwtConfig({ keys: ["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"] }),
        {
          audience: AUDIENCE,
          logger: testLogger,
        },
      ),
    ).toThrow(/is a private key/);
  });
});
