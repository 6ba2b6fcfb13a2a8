import { stat } from "node:fs/promises";
import { isMainThread, parentPort, workerData, type Worker } from "node:worker_threads";
import { GatewayError, isPlainObject, type ErrorCode, type Logger } from "../../core/index.js";
import { internStrings } from "../../core/intern.js";
import { startModuleWorker } from "../../core/worker-thread.js";
import type { ReservedParams } from "./auth.js";
import type { RestConfig } from "./config.js";
import { extractOperations, isSelected } from "./operations.js";
import { isUrl, loadSpec, specLocation, type LoadedSpec } from "./spec-loader.js";
import { buildTools, type BoundTool } from "./tools.js";

/** What turning a spec into tools needs: plain data, so it can be handed to a worker thread. */
export interface SpecJob {
  config: Pick<
    RestConfig,
    "name" | "spec" | "baseUrl" | "tools" | "include" | "exclude" | "validateResponses"
  >;
  baseDir: string;
  /** Parameter names the connector's auth owns (`AuthStrategy.reserved`). */
  reserved: ReservedParams;
}

/** The tools of a spec, as plain data (the base URL as its href). */
export interface PreparedSpec {
  shownAs: string;
  version: LoadedSpec["version"];
  baseUrl: string;
  /** Operations in the spec, selected or not. */
  operations: number;
  tools: BoundTool[];
}

/**
 * Spec files from this size on (and every spec fetched from a URL) are loaded in a worker
 * thread. Parsing and dereferencing leave several times the spec's live tool data as garbage:
 * a 3.6 MB / 5,000-operation spec took the main heap ~40 MB above its settled size, and blocked
 * the event loop for seconds (on every hot reload). Below it, starting the worker (~50-150 ms)
 * costs more than it saves.
 */
export const SPEC_WORKER_MIN_BYTES = 1024 * 1024;

/** How often a worker loaded a spec, and how often the main thread had to take over. */
export const specWorkerStats = { runs: 0, fallbacks: 0 };

export interface SpecLoadOptions {
  logger: Logger;
  /** Worker or main thread regardless of the spec's size (tests). */
  useWorker?: boolean;
  /** Starts the worker (tests inject one that fails). */
  startWorker?: (job: SpecJob) => Worker;
}

const WORKER_TAG = "portcullis:rest-spec";

type WorkerReply =
  | { ok: true; prepared: PreparedSpec }
  | {
      ok: false;
      /** Absent for anything but a GatewayError: the main thread then loads the spec itself. */
      code?: ErrorCode;
      message: string;
      details?: Record<string, unknown>;
      cause?: string;
    };

/**
 * Loads, validates and dereferences the spec, determines the base URL, checks the overrides and
 * the selection and builds the tools. The one implementation, run in a worker or in-process.
 */
export async function prepareSpec(job: SpecJob): Promise<PreparedSpec> {
  const { config } = job;
  const spec = await loadSpec(config.name, config.spec, job.baseDir);
  const baseUrl = resolveBaseUrl(config, spec);
  const ops = extractOperations(spec);

  const overrides = config.tools ?? {};
  const handles = new Set(ops.map((o) => o.handle));
  const unknown = Object.keys(overrides).filter((k) => !handles.has(k));
  if (unknown.length > 0) {
    throw new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): tools.${unknown[0]} names no operation in ${spec.shownAs} (use an operationId, or "METHOD /path" for operations without one)`,
    );
  }
  const selected = ops.filter((op) => isSelected(op, config.include, config.exclude));
  if (selected.length === 0) {
    throw new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): no operation of ${spec.shownAs} is selected (check include/exclude and x-mcp)`,
    );
  }
  const tools = buildTools(selected, {
    connector: config.name,
    baseUrl: baseUrl.href,
    overrides,
    validateResponses: config.validateResponses ?? true,
    reservedParams: job.reserved,
  });
  return {
    shownAs: spec.shownAs,
    version: spec.version,
    baseUrl: baseUrl.href,
    operations: ops.length,
    tools,
  };
}

/**
 * `prepareSpec` in a worker thread that exits afterwards when the spec is large (or remote), so
 * the parse garbage goes with the worker's heap and the event loop stays free; in-process
 * otherwise. A worker that cannot start or dies never fails a valid spec: the main thread
 * takes over.
 */
export async function loadRestSpec(
  job: SpecJob,
  opts: SpecLoadOptions,
): Promise<{ prepared: PreparedSpec; thread: "main" | "worker" }> {
  if (!(opts.useWorker ?? (await worthAWorker(job))))
    return { prepared: internStrings(await prepareSpec(job)), thread: "main" };
  let reply: WorkerReply;
  try {
    reply = await runWorker(job, opts.startWorker ?? startSpecWorker);
    if (!reply.ok && reply.code === undefined) throw new Error(reply.message);
  } catch (err) {
    specWorkerStats.fallbacks++;
    opts.logger.warn(
      { connector: job.config.name, err },
      "rest spec worker failed; loading the spec in the main thread",
    );
    return { prepared: internStrings(await prepareSpec(job)), thread: "main" };
  }
  specWorkerStats.runs++;
  // A structured clone holds its own copy of every string occurrence (see internStrings).
  if (reply.ok) return { prepared: internStrings(reply.prepared), thread: "worker" };
  throw new GatewayError(reply.code!, reply.message, {
    ...(reply.cause === undefined ? {} : { cause: new Error(reply.cause) }),
    ...(reply.details === undefined ? {} : { details: reply.details }),
  });
}

async function worthAWorker(job: SpecJob): Promise<boolean> {
  if (isUrl(job.config.spec)) return true;
  try {
    return (await stat(specLocation(job.config.spec, job.baseDir))).size >= SPEC_WORKER_MIN_BYTES;
  } catch {
    return false; // the in-process path reports the missing file as before
  }
}

function startSpecWorker(job: SpecJob): Worker {
  return startModuleWorker(new URL(import.meta.url), { workerData: { tag: WORKER_TAG, job } });
}

/**
 * A worker per spec. One worker shared by concurrent loads started no faster on 2 busy cores and
 * left the gateway ~20 MB higher in 2 of 3 runs (bench/tmp/mem10k.ts: RSS 190 vs 170 MB).
 */
function runWorker(job: SpecJob, start: (job: SpecJob) => Worker): Promise<WorkerReply> {
  return new Promise((resolve, reject) => {
    const worker = start(job);
    let settled = false;
    worker.once("message", (reply: WorkerReply) => {
      settled = true;
      resolve(reply);
      // Its work is done; terminating also drops whatever keep-alive sockets fetching left open.
      void worker.terminate();
    });
    worker.once("error", (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    worker.once("exit", (code) => {
      if (settled) return;
      settled = true;
      reject(new Error(`spec worker exited with code ${code} before replying`));
    });
  });
}

function replyFor(err: unknown): WorkerReply {
  if (!(err instanceof GatewayError))
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  const { cause } = err;
  return {
    ok: false,
    code: err.code,
    message: err.message,
    ...(err.details === undefined ? {} : { details: err.details }),
    ...(cause === undefined ? {} : { cause: cause instanceof Error ? cause.message : String(cause) }),
  };
}

/**
 * `baseUrl` from config wins; otherwise the spec's first server (3.x, variables at their
 * defaults) or scheme://host/basePath (2.0). Relative server URLs resolve against a spec URL.
 */
function resolveBaseUrl(config: SpecJob["config"], spec: LoadedSpec): URL {
  const fail = (why: string) =>
    new GatewayError(
      "CONFIG_INVALID",
      `connector "${config.name}" (rest): cannot determine the base URL from ${spec.shownAs}: ${why}; set "baseUrl" in the connector file`,
    );
  let raw: string | undefined = config.baseUrl;
  if (raw === undefined) {
    const doc = spec.document;
    if (spec.version === "2.0") {
      if (typeof doc.host !== "string") throw fail("the spec has no host");
      const schemes = Array.isArray(doc.schemes) ? doc.schemes : [];
      const scheme = schemes.includes("https") ? "https" : schemes.includes("http") ? "http" : "https";
      raw = `${scheme}://${doc.host}${typeof doc.basePath === "string" ? doc.basePath : ""}`;
    } else {
      const server = Array.isArray(doc.servers) ? doc.servers[0] : undefined;
      if (!isPlainObject(server) || typeof server.url !== "string") throw fail("the spec has no servers");
      raw = substituteVariables(server.url, server.variables);
      if (isUrl(spec.location)) raw = undoPortlessRewrite(raw, new URL(spec.location));
      if (!/^https?:\/\//i.test(raw)) {
        if (!isUrl(spec.location)) throw fail(`server URL "${raw}" is relative`);
        raw = new URL(raw, spec.location).href;
      }
    }
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail(`"${raw}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw fail(`"${raw}" is not http(s)`);
  if (url.username || url.password) throw fail("credentials in the URL are not allowed (use auth)");
  url.hash = "";
  return url;
}

/**
 * swagger-parser rewrites a relative server URL ("/api") against the spec URL but drops its
 * port ("http://host/api" for a spec at "http://host:8080/openapi.yaml"); put the port back.
 */
function undoPortlessRewrite(serverUrl: string, specUrl: URL): string {
  if (specUrl.port === "") return serverUrl;
  const portless = `${specUrl.protocol}//${specUrl.hostname}`;
  if (serverUrl === portless || serverUrl.startsWith(`${portless}/`)) {
    return `${specUrl.origin}${serverUrl.slice(portless.length)}`;
  }
  return serverUrl;
}

function substituteVariables(template: string, variables: unknown): string {
  if (!isPlainObject(variables)) return template;
  return template.replace(/\{([^}]+)\}/g, (m, name: string) => {
    const v = variables[name];
    return isPlainObject(v) && typeof v.default === "string" ? v.default : m;
  });
}

if (!isMainThread && isPlainObject(workerData) && workerData.tag === WORKER_TAG) {
  const port = parentPort!;
  prepareSpec(workerData.job as SpecJob).then(
    (prepared) => port.postMessage({ ok: true, prepared } satisfies WorkerReply),
    (err: unknown) => port.postMessage(replyFor(err)),
  );
}
