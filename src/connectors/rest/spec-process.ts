import { fork, type ChildProcess } from "node:child_process";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deserialize } from "node:v8";
import { childEntry } from "../../core/child-entry.js";
import { GatewayError, isPlainObject, type ErrorCode, type Logger } from "../../core/index.js";
import { internStrings } from "../../core/intern.js";
import type { ReservedParams } from "./auth.js";
import type { RestConfig } from "./config.js";
import { extractOperations, isSelected } from "./operations.js";
import { isUrl, loadSpec, specLocation, type LoadedSpec } from "./spec-loader.js";
import { buildTools, type BoundTool } from "./tools.js";

/** What turning a spec into tools needs: plain data, so it can be handed to a child process. */
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
 * Spec files from this size on (and every spec fetched from a URL) are loaded in a child process.
 * Parsing and dereferencing leave several times the spec's live tool data as garbage: a 3.6 MB /
 * 5,000-operation spec took the main heap ~40 MB above its settled size, and blocked the event
 * loop for seconds (on every hot reload). Below it, starting the process costs more than it saves.
 */
export const SPEC_CHILD_MIN_BYTES = 1024 * 1024;

/** How often a child process loaded a spec, and how often the gateway had to take over. */
export const specChildStats = { runs: 0, fallbacks: 0 };

export interface SpecLoadOptions {
  logger: Logger;
  /** Child process or in-process regardless of the spec's size (tests). */
  useChild?: boolean;
  /** Starts the child process (tests inject one that fails); it is sent a SpecRequest over IPC. */
  startChild?: () => ChildProcess;
}

/** What the child is sent. */
export interface SpecRequest {
  job: SpecJob;
  /** Where the child writes the PreparedSpec (`v8.serialize`) before replying `{ ok: true }`. */
  replyFile: string;
}

/** The child's one message back. */
export type SpecReply =
  | { ok: true }
  | {
      ok: false;
      /** Absent for anything but a GatewayError: the gateway then loads the spec itself. */
      code?: ErrorCode;
      message: string;
      details?: Record<string, unknown>;
      cause?: string;
    };

/** How much of a dying child's stderr its failure message carries. */
const STDERR_TAIL_CHARS = 4096;
/** How long a child that has replied may take to exit before it is killed. */
const CHILD_LINGER_MS = 5_000;

/**
 * Loads, validates and dereferences the spec, determines the base URL, checks the overrides and
 * the selection and builds the tools. The one implementation, run in a child process or in-process.
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
 * `prepareSpec` in a child process that exits afterwards when the spec is large (or remote), so
 * the event loop stays free and every byte the parse touched goes back to the OS with the
 * process. (A worker thread handed back its heap but not its glibc malloc arenas: the
 * 10,000-tool benchmark gateway was ready at 174-182 MB RSS with one, 164-170 MB with a child.)
 * In-process otherwise. A child that cannot start or dies never fails a valid spec: the gateway
 * loads it itself.
 */
export async function loadRestSpec(
  job: SpecJob,
  opts: SpecLoadOptions,
): Promise<{ prepared: PreparedSpec; where: "in-process" | "child" }> {
  if (!(opts.useChild ?? (await worthAChild(job))))
    return { prepared: internStrings(await prepareSpec(job)), where: "in-process" };
  let outcome: PreparedSpec | GatewayError;
  try {
    outcome = await prepareInChild(job, opts.startChild ?? startSpecChild);
  } catch (err) {
    specChildStats.fallbacks++;
    opts.logger.warn(
      { connector: job.config.name, err },
      "rest spec child process failed; loading the spec in-process",
    );
    return { prepared: internStrings(await prepareSpec(job)), where: "in-process" };
  }
  specChildStats.runs++;
  if (outcome instanceof GatewayError) throw outcome;
  // Deserialised data holds its own copy of every string occurrence (see internStrings).
  return { prepared: internStrings(outcome), where: "child" };
}

/**
 * The child's PreparedSpec, or the GatewayError it failed with; throws on anything else.
 *
 * The tools come back through a file, not the IPC channel: Node reads IPC in 64 KB chunks, which
 * land scattered over the main malloc heap and are concatenated once more; for the two 8 MB replies
 * of the 10,000-tool benchmark that left the malloc heap 8-16 MB larger for good.
 */
async function prepareInChild(job: SpecJob, start: () => ChildProcess): Promise<PreparedSpec | GatewayError> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-spec-"));
  try {
    const replyFile = join(dir, "prepared");
    const reply = await runChild({ job, replyFile }, start);
    if (reply.ok) return await readPrepared(replyFile);
    if (reply.code === undefined) throw new Error(reply.message);
    return new GatewayError(reply.code, reply.message, {
      ...(reply.cause === undefined ? {} : { cause: new Error(reply.cause) }),
      ...(reply.details === undefined ? {} : { details: reply.details }),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** ES2024's resizable ArrayBuffer, which Node 20 has; the project's lib is ES2023. */
const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => ArrayBuffer & { resize(byteLength: number): void };

/**
 * Reads and deserialises the child's result. The bytes go into a resizable ArrayBuffer, which V8
 * maps outside malloc and resize(0) returns to the OS at once; a Buffer from readFile lived until
 * the next full GC (16 MB more RSS after loading the benchmark's two specs) and could be carved
 * out of the main malloc heap.
 */
async function readPrepared(file: string): Promise<PreparedSpec> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const bytes = new ResizableArrayBuffer(size, { maxByteLength: size });
    const view = new Uint8Array(bytes);
    for (let at = 0; at < size;) {
      const { bytesRead } = await handle.read(view, at, size - at, at);
      if (bytesRead === 0) throw new Error(`${file} ends at byte ${at} of ${size}`);
      at += bytesRead;
    }
    try {
      return deserialize(view) as PreparedSpec;
    } finally {
      bytes.resize(0);
    }
  } finally {
    await handle.close();
  }
}

async function worthAChild(job: SpecJob): Promise<boolean> {
  if (isUrl(job.config.spec)) return true;
  try {
    return (await stat(specLocation(job.config.spec, job.baseDir))).size >= SPEC_CHILD_MIN_BYTES;
  } catch {
    return false; // the in-process path reports the missing file as before
  }
}

/** Starts spec-child (see childEntry). */
export function startSpecChild(): ChildProcess {
  const { path, execArgv } = childEntry(import.meta.url, "spec-child");
  return fork(path, [], {
    execArgv,
    // Sets (the reserved parameter names) and structured data survive; JSON would not keep them.
    serialization: "advanced",
    // stdout may be the MCP stdio stream: the child never writes to it.
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
}

/**
 * One child per spec, sent the job, answering once and exiting. Settles on "close" (exit, stderr
 * and IPC channel all closed), so a reply is never lost to an early exit event and nothing of the
 * child keeps the event loop alive once the load has resolved.
 */
function runChild(request: SpecRequest, start: () => ChildProcess): Promise<SpecReply> {
  return new Promise((resolve, reject) => {
    const child = start();
    let reply: SpecReply | undefined;
    let failure: Error | undefined;
    let stderrTail = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    let linger: NodeJS.Timeout | undefined;
    child.once("message", (msg: SpecReply) => {
      reply = msg;
      // It exits once its reply is flushed. Not disconnect(): on Node 20 a channel the parent
      // closes never counts towards "close", which then never comes.
      linger = setTimeout(() => child.kill("SIGKILL"), CHILD_LINGER_MS);
    });
    // A spawn failure, or a kill/send that failed: "close" may never come after a spawn failure.
    child.once("error", (err) => {
      failure ??= err;
      if (child.pid === undefined) reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(linger);
      if (reply !== undefined) return resolve(reply);
      const how = signal === null ? `with code ${code}` : `on ${signal}`;
      const stderr = stderrTail.trim();
      reject(
        new Error(`spec child process exited ${how} before replying${stderr ? `; stderr: ${stderr}` : ""}`, {
          ...(failure === undefined ? {} : { cause: failure }),
        }),
      );
    });
    const sendFailed = (err: Error): void => {
      failure ??= err;
      child.kill("SIGKILL");
    };
    try {
      child.send(request, (err) => {
        if (err) sendFailed(err);
      });
    } catch (err) {
      sendFailed(err instanceof Error ? err : new Error(String(err))); // no IPC channel, or not serialisable
    }
  });
}

/** The reply for a failed `prepareSpec`: GatewayErrors field by field, anything else by message. */
export function replyFor(err: unknown): SpecReply {
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
