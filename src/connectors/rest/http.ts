import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex, Readable } from "node:stream";
import axios, { isAxiosError, type AxiosInstance } from "axios";

export interface RawResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: Buffer;
}

export type FailureKind =
  "connect" | "connect-timeout" | "reset" | "timeout" | "cancelled" | "too-large" | "other";

/** A transport-level failure, already classified; its message never carries headers or URLs. */
export class TransportFailure extends Error {
  override readonly name = "TransportFailure";
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly code?: string,
    readonly afterResponse = false,
  ) {
    super(message);
  }
}

export interface TransportOptions {
  connectTimeoutMs: number;
  maxSockets: number;
  maxResponseBytes: number;
}

export interface SendOptions {
  method: string;
  url: URL;
  headers: Record<string, string>;
  data?: string | Buffer | FormData | undefined;
  signal: AbortSignal;
  /** Overrides the transport's response limit (token endpoints need far less). */
  maxResponseBytes?: number;
}

const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EADDRNOTAVAIL",
]);
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"]);
const CONNECT_TIMEOUT_CODE = "PORTCULLIS_CONNECT_TIMEOUT";

/** Node's agents have an idle timeout but no connect timeout; this adds one per new socket. */
function armConnectTimeout(socket: Duplex | null | undefined, ms: number): void {
  const s = socket as Socket | null | undefined;
  if (!s || typeof s.once !== "function" || s.connecting === false) return;
  const timer = setTimeout(() => {
    const err = Object.assign(new Error(`connect timeout after ${ms} ms`), { code: CONNECT_TIMEOUT_CODE });
    s.destroy(err);
  }, ms);
  timer.unref();
  const clear = () => clearTimeout(timer);
  s.once("connect", clear);
  s.once("close", clear);
}

class TimedHttpAgent extends http.Agent {
  constructor(
    opts: http.AgentOptions,
    private readonly connectTimeoutMs: number,
  ) {
    super(opts);
  }
  override createConnection(
    options: http.ClientRequestArgs,
    cb?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, cb);
    armConnectTimeout(socket, this.connectTimeoutMs);
    return socket;
  }
}

class TimedHttpsAgent extends https.Agent {
  constructor(
    opts: https.AgentOptions,
    private readonly connectTimeoutMs: number,
  ) {
    super(opts);
  }
  override createConnection(
    options: https.RequestOptions,
    cb?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, cb);
    armConnectTimeout(socket, this.connectTimeoutMs);
    return socket;
  }
}

/**
 * One per connector: its own keep-alive agents (so one slow upstream cannot starve another's
 * sockets), no redirects (a redirect could leave the configured server), and bodies read as
 * streams so the size limit holds for chunked responses that declare no length.
 */
export class HttpTransport {
  private readonly httpAgent: TimedHttpAgent;
  private readonly httpsAgent: TimedHttpsAgent;
  private readonly client: AxiosInstance;

  constructor(private readonly opts: TransportOptions) {
    const agentOpts = {
      keepAlive: true,
      maxSockets: opts.maxSockets,
      maxFreeSockets: Math.min(opts.maxSockets, 16),
    };
    this.httpAgent = new TimedHttpAgent(agentOpts, opts.connectTimeoutMs);
    this.httpsAgent = new TimedHttpsAgent(agentOpts, opts.connectTimeoutMs);
    this.client = axios.create({
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      maxRedirects: 0,
      responseType: "stream",
      validateStatus: () => true,
      decompress: true,
      maxBodyLength: 64 * 1024 * 1024,
      // The stream reader enforces the limit; axios's own check does not cover streamed bodies.
      maxContentLength: -1,
      transformResponse: [],
      transitional: { clarifyTimeoutError: true },
    });
  }

  async send(req: SendOptions): Promise<RawResponse> {
    req.signal.throwIfAborted();
    const limit = req.maxResponseBytes ?? this.opts.maxResponseBytes;
    let res;
    try {
      res = await this.client.request<Readable>({
        method: req.method,
        url: req.url.href,
        headers: req.headers,
        data: req.data,
        signal: req.signal,
      });
    } catch (err) {
      throw classify(err, req.signal, false);
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers as Record<string, unknown>)) {
      if (typeof v === "string") headers[k.toLowerCase()] = v;
      else if (Array.isArray(v)) headers[k.toLowerCase()] = v.join(", ");
      else if (typeof v === "number") headers[k.toLowerCase()] = String(v);
    }
    // Error bodies only ever become a short excerpt: read their head, never fail on their size.
    const isError = res.status < 200 || res.status >= 300;
    const declared = Number(headers["content-length"]);
    if (!isError && Number.isFinite(declared) && declared > limit) {
      res.data.destroy();
      throw new TransportFailure(
        "too-large",
        `response of ${declared} bytes exceeds the ${limit}-byte limit`,
      );
    }
    const body = await readLimited(res.data, isError ? ERROR_BODY_BYTES : limit, req.signal, isError);
    return { status: res.status, statusText: res.statusText ?? "", headers, body };
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

const ERROR_BODY_BYTES = 64 * 1024;

function readLimited(
  stream: Readable,
  limit: number,
  signal: AbortSignal,
  keepHead: boolean,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if (err) {
        stream.destroy();
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onAbort = () => finish(classify(signal.reason, signal, true));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    stream.on("data", (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        if (keepHead) {
          chunks.push(chunk.subarray(0, limit - size));
          size = limit;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          stream.destroy();
          resolve(Buffer.concat(chunks, size));
        } else finish(new TransportFailure("too-large", `response exceeds the ${limit}-byte limit`));
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
    });
    stream.once("end", () => finish());
    stream.once("error", (err) => finish(classify(err, signal, true)));
    stream.once("close", () => {
      if (!settled && !(stream as Readable & { readableEnded?: boolean }).readableEnded) {
        finish(
          new TransportFailure(
            "reset",
            "connection closed before the response was complete",
            "ECONNRESET",
            true,
          ),
        );
      }
    });
  });
}

/** Maps whatever axios or a socket threw to a TransportFailure, keeping only its code. */
export function classify(err: unknown, signal: AbortSignal, afterResponse: boolean): TransportFailure {
  if (err instanceof TransportFailure) return err;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    const timedOut = reason instanceof Error && reason.name === "TimeoutError";
    return new TransportFailure(timedOut ? "timeout" : "cancelled", timedOut ? "timed out" : "cancelled");
  }
  const code = findCode(err);
  if (code === CONNECT_TIMEOUT_CODE)
    return new TransportFailure("connect-timeout", "connect timed out", code);
  if (code && CONNECT_CODES.has(code)) return new TransportFailure("connect", describeCode(code), code);
  if (code && RESET_CODES.has(code)) {
    return new TransportFailure("reset", "connection reset by the upstream", code, afterResponse);
  }
  if (code === "ETIMEDOUT") return new TransportFailure("timeout", "timed out", code, afterResponse);
  if (isAxiosError(err) && err.code === "ERR_CANCELED")
    return new TransportFailure("cancelled", "cancelled", err.code);
  return new TransportFailure(
    "other",
    code ? `request failed (${code})` : "request failed",
    code,
    afterResponse,
  );
}

function findCode(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 5; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "ERR_BAD_RESPONSE" && code !== "ERR_BAD_REQUEST") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeCode(code: string): string {
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host name could not be resolved";
    default:
      return `host unreachable (${code})`;
  }
}
