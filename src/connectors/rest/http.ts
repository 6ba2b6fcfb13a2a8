import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { pipeline, Transform, type Duplex, type Readable, type TransformCallback } from "node:stream";
import zlib from "node:zlib";

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
 * streams so the size limit holds for chunked and compressed responses alike. Plain node:http:
 * axios cost about 0.33 ms of CPU per call, a fifth of the gateway's whole budget.
 */
export class HttpTransport {
  private readonly httpAgent: TimedHttpAgent;
  private readonly httpsAgent: TimedHttpsAgent;

  constructor(private readonly opts: TransportOptions) {
    const agentOpts = {
      keepAlive: true,
      maxSockets: opts.maxSockets,
      // As many idle as open: a smaller pool closed sockets after every burst above it and
      // reconnected on the next one (connect + close showed in the gateway's profile under load).
      maxFreeSockets: opts.maxSockets,
    };
    this.httpAgent = new TimedHttpAgent(agentOpts, opts.connectTimeoutMs);
    this.httpsAgent = new TimedHttpsAgent(agentOpts, opts.connectTimeoutMs);
  }

  async send(req: SendOptions): Promise<RawResponse> {
    req.signal.throwIfAborted();
    if (!(req.data instanceof FormData)) return this.exchange(req, req.data, undefined);
    let encoded: { type: string | undefined; body: Buffer };
    try {
      // The fetch Request encodes multipart/form-data and picks the boundary.
      const r = new Request("http://multipart.invalid/", { method: "POST", body: req.data });
      encoded = {
        type: r.headers.get("content-type") ?? undefined,
        body: Buffer.from(await r.arrayBuffer()),
      };
    } catch (err) {
      throw classify(err, req.signal, false);
    }
    return this.exchange(req, encoded.body, encoded.type);
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private exchange(
    req: SendOptions,
    body: string | Buffer | undefined,
    formType: string | undefined,
  ): Promise<RawResponse> {
    const { signal, url } = req;
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") {
      return Promise.reject(new TransportFailure("other", "request failed (unsupported protocol)"));
    }
    const limit = req.maxResponseBytes ?? this.opts.maxResponseBytes;
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      let afterResponse = false;
      // Whatever must be destroyed on failure: the request, then the (decoded) response stream.
      let current: { destroy(): unknown } | undefined;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        const failure = classify(err, signal, afterResponse);
        current?.destroy();
        reject(failure);
      };
      const onAbort = () => fail(signal.reason);

      const onResponse = (res: http.IncomingMessage) => {
        if (settled) {
          res.destroy();
          return;
        }
        afterResponse = true;
        current = res;
        const status = res.statusCode ?? 0;
        const headers = responseHeaders(res.headers);
        // Error bodies only ever become a short excerpt: read their head, never fail on their size.
        const isError = status < 200 || status >= 300;
        let stream: Readable = res;
        const encoding = headers["content-encoding"];
        if (encoding !== undefined) {
          if (req.method === "HEAD" || status === 204 || status === 304) {
            delete headers["content-encoding"];
          } else {
            const decoders = createDecoders(encoding);
            if (decoders) {
              // The limit applies to decoded bytes, so the compressed length says nothing.
              delete headers["content-encoding"];
              delete headers["content-length"];
              pipeline([res, ...decoders], (err) => {
                if (err) fail(err);
              });
              stream = decoders[decoders.length - 1] ?? res;
              current = stream;
            }
          }
        }
        if (stream === res && !isError) {
          const declared = Number(headers["content-length"]);
          if (declared > limit) {
            fail(
              new TransportFailure(
                "too-large",
                `response of ${declared} bytes exceeds the ${limit}-byte limit`,
              ),
            );
            return;
          }
        }
        const max = isError ? ERROR_BODY_BYTES : limit;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          resolve({
            status,
            statusText: res.statusMessage ?? "",
            headers,
            body: Buffer.concat(chunks, size),
          });
        };
        stream.on("data", (chunk: Buffer) => {
          if (settled) return;
          if (size + chunk.length <= max) {
            size += chunk.length;
            chunks.push(chunk);
          } else if (isError) {
            chunks.push(chunk.subarray(0, max - size));
            size = max;
            done();
            stream.destroy();
          } else fail(new TransportFailure("too-large", `response exceeds the ${limit}-byte limit`));
        });
        stream.once("end", done);
        stream.on("error", fail);
        if (stream === res) {
          res.once("close", () => {
            if (!res.complete) {
              fail(
                new TransportFailure(
                  "reset",
                  "connection closed before the response was complete",
                  "ECONNRESET",
                  true,
                ),
              );
            }
          });
        }
      };

      let request: http.ClientRequest;
      try {
        request = (secure ? https : http).request(
          url,
          {
            method: req.method,
            headers: outgoingHeaders(req.headers, body, formType),
            agent: secure ? this.httpsAgent : this.httpAgent,
          },
          onResponse,
        );
      } catch (err) {
        // Invalid header values and methods throw synchronously.
        fail(err);
        return;
      }
      current = request;
      request.on("error", fail);
      signal.addEventListener("abort", onAbort, { once: true });
      request.end(body);
    });
  }
}

const ERROR_BODY_BYTES = 64 * 1024;
const ACCEPT_ENCODING = "gzip, deflate, br";
/** Sent when the caller names none (token endpoints): some identity providers refuse anonymous clients. */
const DEFAULT_USER_AGENT = "portcullis-rest-connector";

function outgoingHeaders(
  given: Record<string, string>,
  body: string | Buffer | undefined,
  formType: string | undefined,
): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  let acceptEncoding = false;
  let userAgent = false;
  for (const name of Object.keys(given)) {
    const lower = name.toLowerCase();
    if (lower === "user-agent") userAgent = true;
    // The body we send decides its length, and a multipart body its boundary.
    if (lower === "content-length" || (formType !== undefined && lower === "content-type")) continue;
    if (lower === "accept-encoding") acceptEncoding = true;
    out[name] = given[name];
  }
  if (!acceptEncoding) out["accept-encoding"] = ACCEPT_ENCODING;
  if (!userAgent) out["user-agent"] = DEFAULT_USER_AGENT;
  if (formType !== undefined) out["content-type"] = formType;
  if (body !== undefined)
    out["content-length"] = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  return out;
}

/** Lower-case names (node's already are); repeated headers joined the way node joins them. */
function responseHeaders(raw: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in raw) {
    const value = raw[name];
    if (typeof value === "string") out[name] = value;
    else if (Array.isArray(value)) out[name] = value.join(", ");
  }
  return out;
}

// Sync flushes, as axios used: a body whose compressed stream lacks its trailer still decodes.
const ZLIB_OPTIONS = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
const BROTLI_OPTIONS = {
  flush: zlib.constants.BROTLI_OPERATION_FLUSH,
  finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
};

function createDecoders(encoding: string): Transform[] | undefined {
  switch (encoding.trim().toLowerCase()) {
    case "gzip":
    case "x-gzip":
      return [zlib.createUnzip(ZLIB_OPTIONS)];
    case "deflate":
      return [new ZlibHeader(), zlib.createUnzip(ZLIB_OPTIONS)];
    case "br":
      return [zlib.createBrotliDecompress(BROTLI_OPTIONS)];
    default:
      return undefined;
  }
}

/** "deflate" is meant to be zlib-wrapped, but some servers send raw deflate: give it a header. */
class ZlibHeader extends Transform {
  private first = true;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.first && chunk.length > 0) {
      this.first = false;
      if (chunk[0] !== 0x78) this.push(Buffer.from([0x78, 0x9c]));
    }
    cb(null, chunk);
  }
}

/** Maps whatever a socket, a request or a decoder threw to a TransportFailure, keeping only its code. */
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
    if (typeof code === "string") return code;
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
