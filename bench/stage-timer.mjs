// @ts-check
/**
 * Loaded into a benchmark gateway with `node --import bench/stage-timer.mjs dist/cli.js serve …`:
 * time-stamps the stages of each tools/call so that `npm run bench` can say where a sequential
 * call's time goes inside the gateway, stage by stage, without a profiler's distortion. It wraps a
 * few methods of the built gateway (dist/) and node's socket writes; each stamp costs about a
 * microsecond. Only for one call at a time: stamps go to the call whose request arrived last.
 *
 * On SIGUSR2 it writes what it collected since the last signal to the file named by
 * PORTCULLIS_BENCH_STAGES (JSON: calls, then per stage p50 and mean in microseconds) and starts
 * over. A method it cannot find stops the gateway at startup: a renamed method must not quietly
 * turn into an empty row.
 */
import { renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";

const out = process.env.PORTCULLIS_BENCH_STAGES;
if (!out) throw new Error("stage-timer: set PORTCULLIS_BENCH_STAGES to the file the summary goes to");

const dist = new URL("../dist/", import.meta.url);
const { Gateway } = await import(new URL("gateway/gateway.js", dist).href);
const { SqliteAuditStore } = await import(new URL("audit/store.js", dist).href);
const { WalSync } = await import(new URL("audit/wal-sync.js", dist).href);

/**
 * Stamps in the order a call passes them; each stage runs from one stamp to the next.
 * `what` says what runs in between; `host` marks the stages the host decides (disk, other process).
 */
export const STAGES = [
  {
    from: "request",
    to: "callTool",
    what: "HTTP request read, session checked, JSON-RPC dispatched (node:http, transport, MCP SDK)",
  },
  {
    from: "callTool",
    to: "recordIntent",
    what: "tool resolved, arguments validated, scope constraints, loop guard, rate limits",
  },
  {
    from: "recordIntent",
    to: "writeTransaction",
    what: "intent record built: canonical JSON, redaction, size check",
  },
  {
    from: "writeTransaction",
    to: "syncNow",
    what: "SQLite transaction: the record, its indexes and Merkle nodes into the write-ahead log",
  },
  { from: "syncNow", to: "syncNowDone", what: "fsync of the write-ahead log", host: true },
  {
    from: "syncNowDone",
    to: "invoke",
    what: "intent answered: metrics, span, promise hops to the connector",
  },
  {
    from: "invoke",
    to: "upstreamWrite",
    what: "timeout, breakers, bulkhead, request built, undici dispatch (one event-loop turn)",
  },
  {
    from: "upstreamWrite",
    to: "upstreamRead",
    what: "the upstream answering: its process woken, TCP over loopback",
    host: true,
  },
  { from: "upstreamRead", to: "invokeDone", what: "response parsed, decoded and mapped to a tool result" },
  {
    from: "invokeDone",
    to: "answered",
    what: "result checked, outcome record queued, JSON-RPC answer serialised and written to the socket (that write wakes the client)",
  },
];

/** @type {Record<string, number> | undefined} */
let current;
/** @type {Record<string, number>[]} */
let done = [];

/** @param {string} name */
function stamp(name) {
  if (current && current[name] === undefined) current[name] = performance.now();
}

/**
 * @param {object} proto
 * @param {string} method
 * @param {(result: unknown) => void} [after]
 */
function wrap(proto, method, after) {
  /** @type {Record<string, unknown>} */
  const target = /** @type {any} */ (proto);
  const original = target[method];
  if (typeof original !== "function")
    throw new Error(`stage-timer: ${method} not found in dist/; update bench/stage-timer.mjs`);
  target[method] = function (/** @type {unknown[]} */ ...args) {
    stamp(method);
    const result = original.apply(this, args);
    after?.(result);
    return result;
  };
}

/** @param {string} name */
const whenSettled = (name) => (/** @type {any} */ result) => {
  const call = current;
  Promise.resolve(result).then(
    () => {
      if (call && call[name] === undefined) call[name] = performance.now();
    },
    () => undefined,
  );
};

const emit = http.Server.prototype.emit;
/** @type {any} */ (http.Server.prototype).emit = function (/** @type {any[]} */ ...args) {
  const [event, req, res] = args;
  if (event === "request" && req.method === "POST") {
    const call = (current = { request: performance.now() });
    const end = res.end;
    res.end = function (/** @type {unknown[]} */ ...endArgs) {
      const r = end.apply(this, endArgs);
      call.answered = performance.now();
      if (call.callTool !== undefined) done.push(call);
      return r;
    };
  }
  return emit.apply(this, /** @type {any} */ (args));
};

wrap(Gateway.prototype, "callTool");
wrap(Gateway.prototype, "recordIntent");
wrap(Gateway.prototype, "invoke", whenSettled("invokeDone"));
wrap(SqliteAuditStore.prototype, "writeTransaction");
wrap(WalSync.prototype, "syncNow", () => stamp("syncNowDone"));

// The upstream request is the first socket write after the connector was invoked, its answer the
// first data that arrives after it.
const write = net.Socket.prototype.write;
/** @type {any} */ (net.Socket.prototype).write = function (/** @type {any[]} */ ...args) {
  if (current?.invoke !== undefined) stamp("upstreamWrite");
  return write.apply(this, /** @type {any} */ (args));
};
const socketEmit = net.Socket.prototype.emit;
/** @type {any} */ (net.Socket.prototype).emit = function (/** @type {any[]} */ ...args) {
  if (args[0] === "data" && current?.upstreamWrite !== undefined) stamp("upstreamRead");
  return socketEmit.apply(this, /** @type {any} */ (args));
};

process.on("SIGUSR2", () => {
  const calls = done;
  done = [];
  const stages = STAGES.map(({ from, to, what, host }) => {
    const d = calls
      .map((c) => (c[to] ?? NaN) - (c[from] ?? NaN))
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    return {
      from,
      to,
      what,
      host: host === true,
      n: d.length,
      p50Us: (d[Math.floor((d.length - 1) / 2)] ?? NaN) * 1000,
      meanUs: mean * 1000,
    };
  });
  const totals = calls
    .map((c) => (c.answered ?? NaN) - (c.request ?? NaN))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  writeFileSync(
    `${out}.tmp`,
    JSON.stringify({
      calls: calls.length,
      stages,
      totalP50Us: (totals[Math.floor((totals.length - 1) / 2)] ?? NaN) * 1000,
    }),
  );
  // Renamed into place, so the reader never sees a half-written file.
  renameSync(`${out}.tmp`, out);
});
