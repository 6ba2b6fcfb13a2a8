import { GatewayError, isPlainObject, type ErrorCode, type GatewayErrorOptions } from "../../core/index.js";
import type { RawResponse, TransportFailure } from "./http.js";
import { isJsonMediaType } from "./operations.js";
import type { SecretRedactor } from "./redact.js";

/** What an agent sees of an upstream error body: enough to fix its request, never a page of HTML. */
const MAX_EXCERPT = 600;

/**
 * A GatewayError that also says whether the attempt may be repeated. Kept as a subclass so the
 * gateway sees an ordinary GatewayError whatever the retry policy did.
 */
export class UpstreamFailure extends GatewayError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly retryable: boolean,
    options: GatewayErrorOptions & { retryAfterMs?: number | undefined } = {},
  ) {
    super(code, message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
  readonly retryAfterMs: number | undefined;
}

/** Causes keep only a code and a classified message: raw transport errors can carry request details. */
function safeCause(failure: TransportFailure): Error {
  return Object.assign(new Error(failure.message), { code: failure.code ?? failure.kind });
}

export function transportError(where: string, failure: TransportFailure, budgetMs: number): UpstreamFailure {
  const cause = safeCause(failure);
  switch (failure.kind) {
    case "connect":
      return new UpstreamFailure(
        "UPSTREAM_UNAVAILABLE",
        `${where}: upstream unreachable (${failure.message})`,
        true,
        {
          cause,
        },
      );
    case "connect-timeout":
      return new UpstreamFailure(
        "UPSTREAM_UNAVAILABLE",
        `${where}: upstream unreachable (connect timed out)`,
        true,
        {
          cause,
        },
      );
    case "reset":
      return new UpstreamFailure(
        "UPSTREAM_UNAVAILABLE",
        failure.afterResponse
          ? `${where}: the upstream closed the connection while sending its response`
          : `${where}: the upstream reset the connection`,
        true,
        { cause },
      );
    case "timeout":
      return new UpstreamFailure(
        "UPSTREAM_TIMEOUT",
        `${where}: no complete answer within ${budgetMs} ms`,
        false,
        {
          cause,
        },
      );
    case "cancelled":
      return new UpstreamFailure(
        "UPSTREAM_TIMEOUT",
        `${where}: call cancelled before the upstream answered`,
        false,
        {
          cause,
        },
      );
    case "too-large":
      return new UpstreamFailure("UPSTREAM_BAD_RESPONSE", `${where}: ${failure.message}`, false, { cause });
    case "other":
      return new UpstreamFailure("UPSTREAM_UNAVAILABLE", `${where}: ${failure.message}`, false, { cause });
  }
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

/** Non-2xx answer → UPSTREAM_ERROR whose message carries the status and what the API said. */
export function statusError(where: string, res: RawResponse, redactor: SecretRedactor): UpstreamFailure {
  const excerpt = bodyExcerpt(res, redactor);
  const status = `HTTP ${res.status}${res.statusText ? ` ${redactor.redact(res.statusText).slice(0, 60)}` : ""}`;
  const hint =
    res.status >= 300 && res.status < 400
      ? " (redirects are not followed: check the connector's baseUrl)"
      : res.status === 401 || res.status === 403
        ? " (the connector's upstream credentials were refused)"
        : "";
  const message = `${where}: upstream answered ${status}${hint}${excerpt.text ? `: ${excerpt.text}` : ""}`;
  return new UpstreamFailure("UPSTREAM_ERROR", message, RETRYABLE_STATUS.has(res.status), {
    details: { status: res.status, ...(excerpt.problem ? { problem: excerpt.problem } : {}) },
    retryAfterMs:
      res.status === 429 || res.status === 503 ? retryAfterMs(res.headers["retry-after"]) : undefined,
  });
}

export function retryAfterMs(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * RFC 7807/9457 problem details become `title: detail` plus their validation entries; other
 * JSON is shown compactly; text is whitespace-collapsed; HTML pages are summarised, not shown.
 */
function bodyExcerpt(
  res: RawResponse,
  redactor: SecretRedactor,
): { text: string; problem?: Record<string, unknown> } {
  if (res.body.length === 0) return { text: "" };
  const type = (res.headers["content-type"] ?? "").toLowerCase();
  const raw = res.body.subarray(0, 64 * 1024).toString("utf8");
  if (isJsonMediaType(type) || /^\s*[{[]/.test(raw)) {
    try {
      const parsed: unknown = redactor.redactValue(JSON.parse(raw));
      if (
        isPlainObject(parsed) &&
        (type.includes("problem+json") || "title" in parsed || "detail" in parsed)
      ) {
        const problem = pickProblem(parsed);
        const head = [problem.title, problem.detail].filter((x) => typeof x === "string").join(": ");
        const rest = Object.fromEntries(
          Object.entries(problem).filter(
            ([k]) => !["title", "detail", "type", "status", "instance"].includes(k),
          ),
        );
        const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : "";
        return { text: cap(`${head}${extra}`), problem };
      }
      return { text: cap(JSON.stringify(parsed)) };
    } catch {
      // Not JSON after all: fall through to text.
    }
  }
  if (type.includes("html") || /^\s*<(!doctype|html)/i.test(raw)) return { text: "(an HTML error page)" };
  if (
    !/^(text\/|application\/(xml|x-www-form-urlencoded))/.test(type) &&
    type !== "" &&
    !type.includes("xml")
  ) {
    return { text: `(${res.body.length} bytes of ${type.split(";")[0]})` };
  }
  return { text: cap(redactor.redact(raw).replace(/\s+/g, " ").trim()) };
}

function pickProblem(p: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of [
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "errors",
    "invalid_params",
    "invalid-params",
  ]) {
    if (p[key] !== undefined) out[key] = p[key];
  }
  const json = JSON.stringify(out);
  if (json.length > MAX_EXCERPT * 2) {
    delete out.errors;
    delete out.invalid_params;
    delete out["invalid-params"];
  }
  return out;
}

function cap(text: string): string {
  return text.length > MAX_EXCERPT ? `${text.slice(0, MAX_EXCERPT)}… (truncated)` : text;
}
