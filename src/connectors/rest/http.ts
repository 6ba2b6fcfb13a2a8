import { pipeline, Transform, type Readable, type TransformCallback, type Writable } from "node:stream";
import zlib from "node:zlib";
import { Agent, util, type Dispatcher } from "undici";

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
const RESET_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  // undici: the socket closed or failed under a request ("other side closed").
  "UND_ERR_SOCKET",
]);
const CONNECT_TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT"]);
const TIMEOUT_CODES = new Set(["ETIMEDOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

/**
 * One per connector: its own keep-alive connection pool (so one slow upstream cannot starve
 * another's sockets), no redirects (a redirect could leave the configured server), and bodies
 * taken chunk by chunk so the size limit holds for chunked and compressed responses alike.
 *
 * undici's dispatcher with a handler of our own, not node:http: per request it builds no
 * ClientRequest, IncomingMessage or stream, which cost 25–70 µs of CPU and 30–100 µs at p50 per
 * call against the benchmark's upstream (axios, before node:http, cost ~0.33 ms).
 */
export class HttpTransport {
  private readonly dispatcher: Agent;

  constructor(private readonly opts: TransportOptions) {
    this.dispatcher = new Agent({
      connections: opts.maxSockets,
      connect: { timeout: opts.connectTimeoutMs },
      maxRedirections: 0,
    });
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
    this.dispatcher.destroy().catch(() => undefined);
  }

  private exchange(
    req: SendOptions,
    body: string | Buffer | undefined,
    formType: string | undefined,
  ): Promise<RawResponse> {
    const { signal, url } = req;
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return Promise.reject(new TransportFailure("other", "request failed (unsupported protocol)"));
    }
    const limit = req.maxResponseBytes ?? this.opts.maxResponseBytes;
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      let afterResponse = false;
      let abortRequest: ((err: Error) => void) | undefined;
      let resumeSocket: () => void = () => undefined;
      // Set for a compressed answer: raw chunks go in, decoded ones come out to `take`.
      let decoder: { head: Writable; tail: Readable } | undefined;
      let status = 0;
      let statusText = "";
      let headers: Record<string, string> = {};
      let max = limit;
      let isError = false;
      const chunks: Buffer[] = [];
      let size = 0;

      const stop = (err: Error) => {
        abortRequest?.(err);
        decoder?.head.destroy();
        decoder?.tail.destroy();
      };
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        const failure = classify(err, signal, afterResponse);
        stop(failure);
        reject(failure);
      };
      const onAbort = () => fail(signal.reason);
      const done = () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        resolve({ status, statusText, headers, body: Buffer.concat(chunks, size) });
      };
      /** A (decoded) chunk of the body, counted against the limit. */
      const take = (chunk: Buffer) => {
        if (settled) return;
        if (size + chunk.length <= max) {
          size += chunk.length;
          chunks.push(chunk);
        } else if (isError) {
          // Error bodies only ever become a short excerpt: keep their head, never fail on their size.
          chunks.push(chunk.subarray(0, max - size));
          size = max;
          done();
          stop(new Error("error body excerpt complete"));
        } else fail(new TransportFailure("too-large", `response exceeds the ${limit}-byte limit`));
      };

      const handler: Dispatcher.DispatchHandlers = {
        onConnect: (abort) => {
          if (settled) abort(new Error("request settled before it was sent"));
          else abortRequest = abort;
        },
        onHeaders: (statusCode, rawHeaders, resume, reason) => {
          if (settled) return false;
          resumeSocket = resume;
          afterResponse = true;
          status = statusCode;
          statusText = reason;
          headers = responseHeaders(util.parseHeaders(rawHeaders as Buffer[]));
          isError = status < 200 || status >= 300;
          max = isError ? ERROR_BODY_BYTES : limit;
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
                const head = decoders[0]!;
                const tail = decoders[decoders.length - 1]!;
                if (decoders.length > 1) pipeline(decoders, (err) => err && fail(err));
                else head.on("error", fail);
                tail.on("data", take);
                tail.once("end", done);
                decoder = { head, tail };
                return true;
              }
            }
          }
          if (!isError) {
            const declared = Number(headers["content-length"]);
            if (declared > limit) {
              fail(
                new TransportFailure(
                  "too-large",
                  `response of ${declared} bytes exceeds the ${limit}-byte limit`,
                ),
              );
              return false;
            }
          }
          return true;
        },
        onData: (chunk) => {
          if (settled) return false;
          if (!decoder) {
            take(chunk);
            return true;
          }
          // Backpressure: the socket is paused while the decoder is behind, so a compression
          // bomb is refused after about the limit's worth of decoding, not after what the
          // socket could buffer meanwhile.
          if (decoder.head.write(chunk)) return true;
          decoder.head.once("drain", () => resumeSocket());
          return false;
        },
        onComplete: () => {
          if (settled) return;
          if (decoder) decoder.head.end();
          else done();
        },
        onError: fail,
      };

      signal.addEventListener("abort", onAbort, { once: true });
      try {
        this.dispatcher.dispatch(
          {
            origin: url.origin,
            path: `${url.pathname}${url.search}`,
            method: req.method as Dispatcher.HttpMethod,
            headers: outgoingHeaders(req.headers, body, formType),
            body: body ?? null,
          },
          handler,
        );
      } catch (err) {
        // Invalid header values and methods are refused before anything is sent.
        fail(err);
      }
    });
  }
}

const ERROR_BODY_BYTES = 64 * 1024;
const ACCEPT_ENCODING = "gzip, deflate, br";
/** Sent when the caller names none (token endpoints): some identity providers refuse anonymous clients. */
const DEFAULT_USER_AGENT = "portcullis-rest-connector";
/**
 * Hop-by-hop and connection-management headers: the transport runs the connection, so a spec's
 * header parameter or a configured header of these names is not sent (undici refuses them).
 */
const CONNECTION_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
]);

function outgoingHeaders(
  given: Record<string, string>,
  body: string | Buffer | undefined,
  formType: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  let acceptEncoding = false;
  let userAgent = false;
  for (const name of Object.keys(given)) {
    const lower = name.toLowerCase();
    if (lower === "user-agent") userAgent = true;
    // The body we send decides its length, and a multipart body its boundary.
    if (lower === "content-length" || (formType !== undefined && lower === "content-type")) continue;
    if (CONNECTION_HEADERS.has(lower)) continue;
    if (lower === "accept-encoding") acceptEncoding = true;
    out[name] = given[name]!;
  }
  if (!acceptEncoding) out["accept-encoding"] = ACCEPT_ENCODING;
  if (!userAgent) out["user-agent"] = DEFAULT_USER_AGENT;
  if (formType !== undefined) out["content-type"] = formType;
  if (body !== undefined)
    out["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.length);
  return out;
}

/** Lower-case names (undici's already are); repeated headers joined the way node joins them. */
function responseHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
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
  if (code && CONNECT_TIMEOUT_CODES.has(code))
    return new TransportFailure("connect-timeout", "connect timed out", code);
  if (code && CONNECT_CODES.has(code)) return new TransportFailure("connect", describeCode(code), code);
  if (code && RESET_CODES.has(code)) {
    return new TransportFailure("reset", "connection reset by the upstream", code, afterResponse);
  }
  if (code && TIMEOUT_CODES.has(code))
    return new TransportFailure("timeout", "timed out", code, afterResponse);
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
