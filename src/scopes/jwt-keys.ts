import { createPublicKey, type KeyObject } from "node:crypto";
import { GatewayError } from "../core/index.js";

/** A configured local verification key, with what it may verify. */
export interface LocalKey {
  readonly key: KeyObject;
  readonly kid?: string;
  /** Algorithm the JWK pins (`alg`), when it does. */
  readonly alg?: string;
  readonly index: number;
}

function configError(index: number, message: string, cause?: unknown): GatewayError {
  return new GatewayError(
    "CONFIG_INVALID",
    `identity.jwt.keys[${index}]: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

/** Parses `identity.jwt.keys`: SPKI/X.509 PEM text or public JWKs. Private and symmetric keys are refused. */
export function loadLocalKeys(keys: readonly (string | Record<string, unknown>)[]): LocalKey[] {
  return keys.map((k, index) => {
    if (typeof k === "string") {
      if (/PRIVATE KEY/.test(k))
        throw configError(index, "is a private key; configure the public key (SPKI PEM) instead");
      try {
        return { key: createPublicKey(k), index };
      } catch (err) {
        throw configError(index, "is not a PEM public key or certificate", err);
      }
    }
    if (k.kty === "oct") throw configError(index, "is a symmetric (oct) key; HMAC tokens are never accepted");
    if ("d" in k) throw configError(index, 'is a private JWK (it has "d"); configure the public key only');
    let key: KeyObject;
    try {
      key = createPublicKey({ key: k as never, format: "jwk" });
    } catch (err) {
      throw configError(index, "is not a valid public JWK", err);
    }
    return {
      key,
      index,
      ...(typeof k.kid === "string" ? { kid: k.kid } : {}),
      ...(typeof k.alg === "string" ? { alg: k.alg } : {}),
    };
  });
}

/** Whether a key of this type can verify a signature made with `alg` (no RSA key for ES256, and so on). */
export function keyFitsAlg(key: KeyObject, alg: string): boolean {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (alg.startsWith("RS")) return type === "rsa";
  if (alg.startsWith("PS")) return type === "rsa" || type === "rsa-pss";
  if (alg === "ES256") return type === "ec" && curve === "prime256v1";
  if (alg === "ES384") return type === "ec" && curve === "secp384r1";
  if (alg === "ES512") return type === "ec" && curve === "secp521r1";
  if (alg === "EdDSA" || alg === "Ed25519") return type === "ed25519" || type === "ed448";
  return false;
}

/** Keys that may have signed a token with this header, most specific (matching `kid`) first. */
export function candidateKeys(keys: readonly LocalKey[], alg: string, kid: string | undefined): LocalKey[] {
  const fits = keys.filter((k) => keyFitsAlg(k.key, alg) && (k.alg === undefined || k.alg === alg));
  if (kid === undefined) return fits;
  const byKid = fits.filter((k) => k.kid === kid);
  // PEM keys have no kid; they stay candidates for any kid, after keys that name it.
  return byKid.length > 0 ? byKid : fits.filter((k) => k.kid === undefined);
}
