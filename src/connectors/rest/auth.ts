import { GatewayError, isPlainObject } from "../../core/index.js";
import { DEFAULTS, type RestAuthConfig } from "./config.js";
import { transportError, statusError } from "./errors.js";
import { TransportFailure, classify, type HttpTransport } from "./http.js";
import type { SecretRedactor } from "./redact.js";
import type { PreparedRequest } from "./request.js";

export interface ReservedParams {
  header: Set<string>;
  query: Set<string>;
  cookie: Set<string>;
}

/**
 * Adds the connector's own upstream credentials. The agent's token never reaches here (the
 * gateway keeps it in the identity layer), so the only credentials ever sent are configured ones.
 */
export interface AuthStrategy {
  /** Parameter names the strategy owns, so agents cannot override them through spec parameters. */
  readonly reserved: ReservedParams;
  apply(req: PreparedRequest, signal: AbortSignal): Promise<void>;
  /** After a 401: drop the credential that failed; true when a retry with a fresh one makes sense. */
  renew(req: PreparedRequest): boolean;
}

const emptyReserved = (): ReservedParams => ({ header: new Set(), query: new Set(), cookie: new Set() });

export function createAuth(
  connector: string,
  config: RestAuthConfig | undefined,
  transport: HttpTransport,
  redactor: SecretRedactor,
): AuthStrategy {
  const reserved = emptyReserved();
  if (config === undefined) return { reserved, apply: () => Promise.resolve(), renew: () => false };
  switch (config.type) {
    case "apiKey": {
      redactor.add(config.value);
      if (config.in === "header") reserved.header.add(config.name.toLowerCase());
      else if (config.in === "query") reserved.query.add(config.name);
      else reserved.cookie.add(config.name);
      return {
        reserved,
        apply(req) {
          if (config.in === "header") req.headers[config.name] = config.value;
          else if (config.in === "query") appendQuery(req.url, config.name, config.value);
          else appendCookie(req, config.name, config.value);
          return Promise.resolve();
        },
        renew: () => false,
      };
    }
    case "bearer":
      redactor.add(config.token);
      reserved.header.add("authorization");
      return {
        reserved,
        apply(req) {
          req.headers.authorization = `Bearer ${config.token}`;
          return Promise.resolve();
        },
        renew: () => false,
      };
    case "basic": {
      const encoded = Buffer.from(`${config.username}:${config.password}`).toString("base64");
      redactor.add(config.password);
      redactor.add(encoded);
      reserved.header.add("authorization");
      return {
        reserved,
        apply(req) {
          req.headers.authorization = `Basic ${encoded}`;
          return Promise.resolve();
        },
        renew: () => false,
      };
    }
    case "oauth2ClientCredentials": {
      reserved.header.add("authorization");
      const provider = new ClientCredentialsProvider(connector, config, transport, redactor);
      return {
        reserved,
        async apply(req, signal) {
          req.headers.authorization = `Bearer ${await provider.token(signal)}`;
        },
        renew(req) {
          const used = req.headers.authorization?.replace(/^Bearer /, "");
          if (used) provider.invalidate(used);
          return true;
        },
      };
    }
  }
}

function appendQuery(url: URL, name: string, value: string): void {
  const pair = `${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  url.search = url.search === "" ? `?${pair}` : `${url.search}&${pair}`;
}

function appendCookie(req: PreparedRequest, name: string, value: string): void {
  const pair = `${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  req.headers.cookie = req.headers.cookie ? `${req.headers.cookie}; ${pair}` : pair;
}

type OAuthConfig = Extract<RestAuthConfig, { type: "oauth2ClientCredentials" }>;

const TOKEN_TIMEOUT_MS = 15_000;
const TOKEN_MAX_BYTES = 64 * 1024;
/** RFC 6749 makes expires_in optional; assume a short life rather than caching forever. */
const DEFAULT_TOKEN_LIFETIME_S = 300;

/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4). One token per connector, fetched once for all
 * concurrent callers, renewed ahead of expiry, and dropped when the upstream refuses it with a
 * 401 (the token was revoked or expired early), so the next attempt fetches a fresh one.
 */
export class ClientCredentialsProvider {
  private cached: { token: string; refreshAt: number } | undefined;
  private pending: Promise<string> | undefined;
  private readonly tokenUrl: URL;
  private readonly where: string;

  constructor(
    connector: string,
    private readonly config: OAuthConfig,
    private readonly transport: HttpTransport,
    private readonly redactor: SecretRedactor,
  ) {
    this.tokenUrl = new URL(config.tokenUrl);
    this.where = `connector "${connector}" (rest): OAuth token endpoint ${this.tokenUrl.origin}${this.tokenUrl.pathname}`;
    redactor.add(config.clientSecret);
    redactor.add(
      Buffer.from(`${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`).toString("base64"),
    );
  }

  async token(signal: AbortSignal): Promise<string> {
    if (this.cached && Date.now() < this.cached.refreshAt) return this.cached.token;
    this.pending ??= this.fetchToken().finally(() => {
      this.pending = undefined;
    });
    return raceAbort(this.pending, signal);
  }

  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<string> {
    const form = new URLSearchParams({ grant_type: "client_credentials" });
    if (this.config.scopes?.length) form.set("scope", this.config.scopes.join(" "));
    if (this.config.audience) form.set("audience", this.config.audience);
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    };
    if ((this.config.clientAuth ?? "basic") === "basic") {
      const id = formEncode(this.config.clientId);
      const secret = formEncode(this.config.clientSecret);
      headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
    } else {
      form.set("client_id", this.config.clientId);
      form.set("client_secret", this.config.clientSecret);
    }
    const signal = AbortSignal.timeout(TOKEN_TIMEOUT_MS);
    const started = Date.now();
    let res;
    try {
      res = await this.transport.send({
        method: "POST",
        url: this.tokenUrl,
        headers,
        data: form.toString(),
        signal,
        maxResponseBytes: TOKEN_MAX_BYTES,
      });
    } catch (err) {
      const failure = err instanceof TransportFailure ? err : classify(err, signal, false);
      throw transportError(this.where, failure, TOKEN_TIMEOUT_MS);
    }
    if (res.status < 200 || res.status >= 300) throw statusError(this.where, res, this.redactor);
    let body: unknown;
    try {
      body = JSON.parse(res.body.toString("utf8"));
    } catch (err) {
      throw new GatewayError("UPSTREAM_BAD_RESPONSE", `${this.where}: answered with invalid JSON`, {
        cause: new Error(err instanceof Error ? err.message : "invalid JSON"),
      });
    }
    const token = isPlainObject(body) ? body.access_token : undefined;
    const type = isPlainObject(body) ? body.token_type : undefined;
    if (typeof token !== "string" || token === "") {
      throw new GatewayError("UPSTREAM_BAD_RESPONSE", `${this.where}: answer has no access_token`);
    }
    if (type !== undefined && (typeof type !== "string" || type.toLowerCase() !== "bearer")) {
      throw new GatewayError(
        "UPSTREAM_BAD_RESPONSE",
        `${this.where}: unsupported token_type (expected Bearer)`,
      );
    }
    this.redactor.addRotating(token);
    const rawExpiry = isPlainObject(body) ? Number(body.expires_in) : NaN;
    const lifetimeMs =
      (Number.isFinite(rawExpiry) && rawExpiry > 0 ? rawExpiry : DEFAULT_TOKEN_LIFETIME_S) * 1000;
    // Short-lived tokens renew at half-life, long-lived ones a fixed margin before expiry.
    const margin = Math.min(
      this.config.refreshBeforeExpiryMs ?? DEFAULTS.refreshBeforeExpiryMs,
      lifetimeMs / 2,
    );
    this.cached = { token, refreshAt: started + lifetimeMs - margin };
    return token;
  }
}

/** RFC 6749 §2.3.1: client id and secret are form-encoded before Basic encoding. */
function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, "+");
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(classify(signal.reason, signal, false));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(classify(signal.reason, signal, false));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
