import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { connect } from "node:net";
import { resolve as resolvePath } from "node:path";
import axios, { type AxiosInstance } from "axios";
import soap, { type Client as SoapClient, type ClientSSLSecurity, type IOptions } from "soap";
import { GatewayError } from "../../core/index.js";
import type { SoapConfig } from "./config.js";
import type { OperationModel } from "./operations.js";
import type { SoapVersion } from "./wsdl-loader.js";

/** What came back over HTTP, whatever it says: interpreting it is the caller's job. */
export interface HttpAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
}

type SoapCallback = (err: unknown, result: unknown, rawResponse: unknown) => void;
type SoapMethod = (
  args: unknown,
  cb: SoapCallback,
  options: Record<string, unknown>,
  headers: Record<string, string>,
) => void;

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EPROTO",
  "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** An endpoint as it may appear in messages and logs: no credentials, no query string. */
export function showEndpoint(url: string | undefined): string {
  if (!url) return "(no endpoint)";
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid endpoint URL)";
  }
}

/**
 * The HTTP side: soap clients (one per SOAP version in use, since soap fixes the envelope version
 * per client), connection pools, security. Secrets stay inside the soap security objects.
 */
export class SoapTransport {
  readonly http: AxiosInstance;
  private readonly config: SoapConfig;
  private readonly wsdlRef: string;
  private readonly label: string;
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  private readonly tls: ClientSSLSecurity | undefined;
  private readonly clients = new Map<SoapVersion, Promise<SoapClient>>();

  constructor(config: SoapConfig, baseDir: string, label: string) {
    this.config = config;
    this.label = label;
    this.wsdlRef = /^https?:\/\//i.test(config.wsdl) ? config.wsdl : resolvePath(baseDir, config.wsdl);
    this.httpAgent = new HttpAgent({ keepAlive: config.keepAlive, maxSockets: config.maxSockets });
    this.httpsAgent = new HttpsAgent({ keepAlive: config.keepAlive, maxSockets: config.maxSockets });
    this.http = axios.create({
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      maxRedirects: 0,
      maxContentLength: config.maxResponseBytes,
      validateStatus: null,
    });
    if (config.tls) {
      const t = config.tls;
      const file = (p: string | undefined) => (p === undefined ? undefined : resolvePath(baseDir, p));
      try {
        this.tls = new soap.ClientSSLSecurity(file(t.key) ?? "", file(t.cert) ?? "", file(t.ca) ?? "", {
          rejectUnauthorized: t.rejectUnauthorized,
          ...(t.passphrase !== undefined ? { passphrase: t.passphrase } : {}),
          ...(t.servername !== undefined ? { servername: t.servername } : {}),
          ...(config.keepAlive ? { forever: true, maxSockets: config.maxSockets } : {}),
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
        throw new GatewayError(
          "CONFIG_INVALID",
          `${label}: cannot read a tls file (cert, key or ca): ${code}`,
          {
            cause: err,
          },
        );
      }
    }
  }

  private client(version: SoapVersion): Promise<SoapClient> {
    let pending = this.clients.get(version);
    if (!pending) {
      pending = soap
        .createClientAsync(this.wsdlRef, {
          // Same axios at runtime; its ESM and CJS type declarations merely differ.
          request: this.http as unknown as IOptions["request"],
          // soap caches parsed WSDLs process-wide and the SOAP version is a property of that object.
          disableCache: true,
          forceSoap12Headers: version === "1.2",
          ...(this.config.endpoint ? { endpoint: this.config.endpoint } : {}),
        })
        .then((client) => {
          const sec = this.config.security;
          if (sec?.type === "wsSecurity") {
            client.setSecurity(
              new soap.WSSecurity(sec.username, sec.password, {
                passwordType: sec.passwordType,
                hasTimeStamp: sec.timestamp,
                hasTokenCreated: true,
                hasNonce: true,
                mustUnderstand: sec.mustUnderstand,
              }),
            );
          } else if (sec?.type === "basic")
            client.setSecurity(new soap.BasicAuthSecurity(sec.username, sec.password));
          else if (sec?.type === "bearer") client.setSecurity(new soap.BearerSecurity(sec.token));
          return client;
        });
      // A failed load is retried on the next call rather than remembered forever.
      pending.catch(() => this.clients.delete(version));
      this.clients.set(version, pending);
    }
    return pending;
  }

  /** Prepares the soap client(s) the operations need, so that a broken WSDL fails at startup. */
  async warm(versions: Iterable<SoapVersion>): Promise<void> {
    for (const v of new Set(versions)) await this.client(v);
  }

  /**
   * Sends one request. Resolves with whatever HTTP answer came back (any status); rejects with
   * a GatewayError when none did (unreachable, timeout, cancelled, too large).
   */
  async send(
    op: OperationModel,
    bodyXml: string,
    signal: AbortSignal,
    timeout: AbortSignal,
    timeoutMs: number,
    traceparent: string | undefined,
  ): Promise<HttpAnswer> {
    const client = await this.client(op.version).catch((err: unknown) => {
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${this.label}: cannot load the WSDL for the soap client`,
        { cause: err },
      );
    });
    const service = (client as unknown as Record<string, Record<string, Record<string, SoapMethod>>>)[
      op.service
    ];
    const method = service?.[op.port]?.[op.name];
    if (typeof method !== "function") {
      throw new GatewayError(
        "INTERNAL",
        `${this.label}: operation ${op.name} is missing from the soap client`,
      );
    }
    const options: Record<string, unknown> = {
      signal,
      timeout: timeoutMs,
      maxContentLength: this.config.maxResponseBytes,
      maxRedirects: 0,
    };
    this.tls?.addOptions(options);
    const headers: Record<string, string> = traceparent ? { traceparent } : {};
    const endpoint = showEndpoint(this.config.endpoint ?? op.location);
    return new Promise<HttpAnswer>((resolve, reject) => {
      method(
        // soap inserts raw XML from `_xml` in document style and from `$xml` inside its rpc wrapper.
        op.input.rpc ? { $xml: bodyXml } : { _xml: bodyXml },
        (err, _result, rawResponse) => {
          const e = err as {
            response?: { status?: number; statusText?: string };
            body?: unknown;
            code?: string;
          } | null;
          if (!e) {
            // soap hands the raw body back on success; on an empty answer it may hand back less.
            resolve({
              status: 200,
              statusText: "OK",
              body: typeof rawResponse === "string" ? rawResponse : "",
            });
            return;
          }
          if (e.response?.status !== undefined && typeof e.body === "string") {
            resolve({ status: e.response.status, statusText: e.response.statusText ?? "", body: e.body });
            return;
          }
          reject(this.transportError(err, endpoint, signal, timeout, timeoutMs));
        },
        options,
        headers,
      );
    });
  }

  private transportError(
    err: unknown,
    endpoint: string,
    signal: AbortSignal,
    timeout: AbortSignal,
    timeoutMs: number,
  ): GatewayError {
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    const code = e.code ?? e.cause?.code;
    if (timeout.aborted || code === "ECONNABORTED") {
      return new GatewayError(
        "UPSTREAM_TIMEOUT",
        `${this.label}: ${endpoint} did not answer within ${timeoutMs} ms`,
        { cause: err },
      );
    }
    if (signal.aborted) {
      return new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${this.label}: the call to ${endpoint} was cancelled`,
        { cause: err },
      );
    }
    if (typeof e.message === "string" && /maxContentLength/.test(e.message)) {
      return new GatewayError(
        "UPSTREAM_BAD_RESPONSE",
        `${this.label}: the response from ${endpoint} exceeds the ${this.config.maxResponseBytes}-byte limit (maxResponseBytes); it was cut off`,
        { cause: err },
      );
    }
    if (code && NETWORK_CODES.has(code)) {
      return new GatewayError("UPSTREAM_UNAVAILABLE", `${this.label}: cannot reach ${endpoint} (${code})`, {
        cause: err,
        details: { code },
      });
    }
    return new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `${this.label}: request to ${endpoint} failed${code ? ` (${code})` : ""}`,
      { cause: err },
    );
  }

  /** Can a TCP connection to each endpoint be opened? (No request is sent: calls may not be free.) */
  async reachable(urls: readonly string[], timeoutMs = 3_000): Promise<{ ok: boolean; detail?: string }> {
    for (const url of new Set(urls)) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return { ok: false, detail: `invalid endpoint URL` };
      }
      const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
      const host = u.hostname.replace(/^\[|\]$/g, "");
      const problem = await new Promise<string | undefined>((done) => {
        const socket = connect({ host, port });
        const timer = setTimeout(() => {
          socket.destroy();
          done("timed out");
        }, timeoutMs);
        socket.once("connect", () => {
          clearTimeout(timer);
          socket.end();
          done(undefined);
        });
        socket.once("error", (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          done(err.code ?? "error");
        });
      });
      if (problem) return { ok: false, detail: `cannot connect to ${showEndpoint(url)}: ${problem}` };
    }
    return { ok: true };
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    (this.tls as unknown as { agent?: HttpsAgent | null } | undefined)?.agent?.destroy();
    this.clients.clear();
  }
}
