import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from "jose";

export type Alg = "RS256" | "ES256" | "EdDSA";

export interface TestKey {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export async function makeKey(alg: Alg, kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

export const ISSUER = "https://idp.test.example";
export const AUDIENCE = "https://gateway.test.example/mcp";

export interface SignOptions {
  payload?: JWTPayload;
  header?: Record<string, unknown>;
  issuer?: string | null;
  audience?: string | null;
  subject?: string | null;
  /** Seconds from now; null leaves exp out. */
  expiresIn?: number | null;
  notBefore?: number;
}

export async function sign(key: TestKey, opts: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...opts.payload })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...opts.header })
    .setIssuedAt(now);
  if (opts.issuer !== null) jwt.setIssuer(opts.issuer ?? ISSUER);
  if (opts.audience !== null) jwt.setAudience(opts.audience ?? AUDIENCE);
  if (opts.subject !== null) jwt.setSubject(opts.subject ?? "agent-1");
  if (opts.expiresIn !== null) jwt.setExpirationTime(now + (opts.expiresIn ?? 300));
  if (opts.notBefore !== undefined) jwt.setNotBefore(now + opts.notBefore);
  return jwt.sign(key.privateKey);
}

/** A real JWKS endpoint on port 0 whose key set the test can replace (rotation). */
export class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  private server: Server | undefined;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      if (req.url !== "/.well-known/jwks.json") {
        res.writeHead(404).end();
        return;
      }
      this.fetches++;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
    return this;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}
