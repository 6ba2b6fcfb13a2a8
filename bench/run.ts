/**
 * `npm run bench`: the gateway's overhead, end to end, on this machine. Starts a REST upstream, the
 * gateway as a child process (`node dist/cli.js serve`, HTTP and stdio, durable auditing at its
 * defaults) and MCP SDK clients; measures latency against the direct call, throughput at 1/8/64
 * sessions, tools/list over 100/1,000/10,000 tools, RSS and startup; profiles the gateway where a
 * target is missed; prints the results and writes them into BENCHMARKS.md.
 *
 *   npm run bench                      full run (a few minutes)
 *   BENCH_QUICK=1 npm run bench        smoke run with small counts; does not write BENCHMARKS.md
 *   BENCH_SKIP_BUILD=1 npm run bench   use the existing dist/
 *   BENCH_PROFILE=always|never         profile regardless of the targets (default: only on a miss)
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { createBenchDeployment, type BenchDeployment, type DeploymentShape } from "./deployment.js";
import {
  gatewayCommand,
  startHttpGateway,
  type GatewayCommand,
  type HttpGateway,
} from "./gateway-process.js";
import {
  callItem,
  pairedCalls,
  pairedLatencies,
  callLatencies,
  rawToolCaller,
  connectHttp,
  connectStdio,
  directLatencies,
  directThroughput,
  listAll,
  rawListPage,
  throughput,
  timed,
} from "./load.js";
import { durableCommitPairs } from "./floor.js";
import { startHopFloor, type HopMode } from "./hop-floor.js";
import { machineInfo, rssOf } from "./machine.js";
import { scrapeMetrics, splitBetween } from "./metrics.js";
import { findProfile, summarizeProfile } from "./profile.js";
import {
  renderResults,
  writeBenchmarksFile,
  type BenchResults,
  type ListLine,
  type StageReport,
  type Target,
  type ThroughputLine,
} from "./report.js";
import { int, mb, ms, summarize, type LatencySummary } from "./stats.js";
import { startUpstream, type Upstream } from "./upstream.js";

const REPO_ROOT = resolve(import.meta.dirname, "..");
const QUICK = process.env.BENCH_QUICK === "1";
const PROFILE = process.env.BENCH_PROFILE ?? "auto";

const S = {
  // Calls before latency is measured, on every path alike. V8 keeps optimising the gateway's
  // per-call code for its first ~4,000 sequential calls (p50 per 1,000 calls: 2.3, 1.9, 1.7, 1.6,
  // then flat); a gateway runs for days, so the steady state is what is reported.
  warmup: QUICK ? 50 : 3_000,
  latencyCalls: QUICK ? 200 : 3_000,
  /** The latency calls of each path run in this many blocks, alternating with as many direct blocks. */
  latencyBlocks: QUICK ? 2 : 6,
  /** Calls through the hop-floor proxy before it is measured (it is a few lines of code: little to optimise). */
  hopWarmup: QUICK ? 50 : 1_000,
  throughputMs: QUICK ? 2_000 : 10_000,
  /** Longer than the loop guard's 60 s window (the default), so its state reaches its steady size. */
  sustainedMs: QUICK ? 3_000 : 75_000,
  sessions: [1, 8, 64],
  listSizes: [100, 1_000, 10_000],
  listPageRuns: QUICK ? 30 : 300,
  listFullRuns: QUICK ? 3 : 20,
  listFullBudgetMs: QUICK ? 2_000 : 15_000,
  startupOperations: 500,
  startupRuns: QUICK ? 1 : 3,
  profileMs: QUICK ? 3_000 : 10_000,
};

const TARGET_OVERHEAD_MS = 1;
/** Idle before each commit in the second floor row: about a sequential call's wait for its upstream. */
const FLOOR_IDLE_MS = 0.5;
const TARGET_CALLS_PER_S = 1_500;
const TARGET_LIST_MS = 20;
const TARGET_RSS_BYTES = 200 * 1_048_576;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function build(): string {
  if (process.env.BENCH_SKIP_BUILD === "1") {
    if (!existsSync(join(REPO_ROOT, "dist/cli.js")))
      throw new Error("BENCH_SKIP_BUILD=1 but dist/cli.js is missing");
    return "dist/ used as found (BENCH_SKIP_BUILD=1)";
  }
  log("building dist/ (npm run build)…");
  try {
    execFileSync("npm", ["run", "build", "--silent"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    return "dist/ freshly built by `npm run build`";
  } catch (err) {
    // tsc still emits on type errors; a benchmark of that build is labelled, not hidden.
    if (!existsSync(join(REPO_ROOT, "dist/cli.js"))) throw err;
    const out = String((err as { stdout?: Buffer }).stdout ?? "")
      .split("\n")
      .slice(0, 5)
      .join("\n");
    log(`warning: npm run build reported errors; benchmarking the emitted dist/ anyway:\n${out}`);
    return "WARNING: `npm run build` reported type errors; dist/ was emitted anyway";
  }
}

/** Keeps a deployment and its gateway together so each phase cleans up after itself. */
async function withGateway<T>(
  cmd: GatewayCommand,
  shape: DeploymentShape,
  upstream: Upstream,
  body: (gw: HttpGateway, dep: BenchDeployment) => Promise<T>,
): Promise<T> {
  const dep = createBenchDeployment(shape, upstream.url);
  let gw: HttpGateway | undefined;
  try {
    gw = await startHttpGateway(cmd, dep.configPath);
    return await body(gw, dep);
  } finally {
    const code = await gw?.stop();
    if (code !== undefined && code !== 0) log(`warning: gateway exited with code ${code}`);
    dep.cleanup();
  }
}

/** 64 sessions for S.sustainedMs, on fresh call arguments: the memory a gateway settles at under load. */
async function measureSustained(gw: HttpGateway): Promise<BenchResults["sustained"]> {
  const sessions = 64;
  let maxRss = rssOf(gw.pid);
  const r = await throughput(
    gw.url,
    sessions,
    S.sustainedMs,
    gw.pid,
    () => {
      maxRss = Math.max(maxRss, rssOf(gw.pid));
    },
    50_000,
  );
  const endRss = rssOf(gw.pid);
  log(
    `  sustained, ${sessions} sessions for ${S.sustainedMs / 1000} s: ${int(r.callsPerSecond)} calls/s, errors ${r.errors}` +
      `${r.firstError ? ` (${r.firstError})` : ""}, max RSS ${mb(maxRss)}, at the end ${mb(endRss)}`,
  );
  return {
    sessions,
    durationMs: S.sustainedMs,
    callsPerSecond: r.callsPerSecond,
    errors: r.errors,
    maxRssBytes: maxRss,
    endRssBytes: endRss,
  };
}

async function measureThroughput(gw: HttpGateway, sessions: number): Promise<ThroughputLine> {
  let maxRss = rssOf(gw.pid);
  const before = await scrapeMetrics(gw.url);
  const r = await throughput(gw.url, sessions, S.throughputMs, gw.pid, () => {
    maxRss = Math.max(maxRss, rssOf(gw.pid));
  });
  const after = await scrapeMetrics(gw.url);
  const split = splitBetween(before, after);
  const line: ThroughputLine = {
    sessions,
    callsPerSecond: r.callsPerSecond,
    calls: r.calls,
    errors: r.errors,
    latency: summarize(r.latencies),
    maxRssBytes: maxRss,
    gatewayCpuMs: r.gatewayCpuMs,
    clientCpuMs: r.clientCpuMs,
    ...(r.firstError ? { firstError: r.firstError } : {}),
    ...(split ? { split } : {}),
  };
  log(
    `  ${sessions} sessions: ${int(line.callsPerSecond)} calls/s, p50 ${ms(line.latency.p50)}, p99 ${ms(line.latency.p99)}, ` +
      `errors ${line.errors}${line.firstError ? ` (${line.firstError})` : ""}, CPU/call gateway ${ms(r.gatewayCpuMs, 2)} ` +
      `client ${ms(r.clientCpuMs, 2)}, max RSS ${mb(maxRss)}`,
  );
  return line;
}

async function measureList(cmd: GatewayCommand, upstream: Upstream, registered: number): Promise<ListLine> {
  return withGateway(cmd, { kind: "list", tools: registered }, upstream, async (gw) => {
    const client = await connectHttp(gw.url, `bench-list-${registered}`);
    try {
      const { tools, pages } = await listAll(client);
      for (let i = 0; i < 3; i++) await listAll(client);
      const page: number[] = [];
      for (let i = 0; i < S.listPageRuns; i++) page.push((await timed(() => client.listTools({})))[0]);
      const transport = client.transport as { sessionId?: string; protocolVersion?: string } | undefined;
      const raw: number[] = [];
      for (let i = 0; i < S.listPageRuns; i++) {
        raw.push(
          (
            await timed(() =>
              rawListPage(gw.url, transport?.sessionId ?? "", transport?.protocolVersion ?? "2025-06-18", i),
            )
          )[0],
        );
      }
      // The SDK client's full listing of 5,000 tools takes seconds (its own ajv compiles): bounded
      // by time too, so the whole run stays within minutes.
      const full: number[] = [];
      const fullDeadline = performance.now() + S.listFullBudgetMs;
      for (let i = 0; i < S.listFullRuns && (i < 3 || performance.now() < fullDeadline); i++) {
        full.push((await timed(() => listAll(client)))[0]);
      }
      const line: ListLine = {
        registered,
        visible: tools,
        pages,
        startupMs: gw.startupMs,
        onePage: summarize(page),
        onePageRaw: summarize(raw),
        full: summarize(full),
        rssBytes: rssOf(gw.pid),
      };
      log(
        `  ${int(registered)} tools (${int(tools)} visible, ${pages} pages): one page p50 ${ms(line.onePage.p50)} ` +
          `(raw ${ms(line.onePageRaw.p50)}), full listing p50 ${ms(line.full.p50, 1)}, startup ${ms(gw.startupMs, 0)}, RSS ${mb(line.rssBytes)}`,
      );
      return line;
    } finally {
      await client.close();
    }
  });
}

async function measureStartup(cmd: GatewayCommand, upstream: Upstream): Promise<BenchResults["startup"]> {
  const readyMs: number[] = [];
  const firstListMs: number[] = [];
  let tools = 0;
  for (let run = 0; run < S.startupRuns; run++) {
    const started = performance.now();
    await withGateway(cmd, { kind: "startup", operations: S.startupOperations }, upstream, async (gw) => {
      const client = await connectHttp(gw.url, "bench-startup");
      try {
        await client.listTools({});
        firstListMs.push(performance.now() - started);
        readyMs.push(gw.startupMs);
        tools = (await listAll(client)).tools;
      } finally {
        await client.close();
      }
    });
  }
  log(
    `  ${S.startupOperations} operations (${tools} tools): ready in ${readyMs.map((v) => ms(v, 0)).join(", ")}`,
  );
  return { readyMs, firstListMs, tools: S.startupOperations };
}

/** A profiled gateway child under the load that missed its target; the profile is written on exit. */
async function profileUnder(
  upstream: Upstream,
  shape: DeploymentShape,
  load: (gw: HttpGateway, client: Client) => Promise<void>,
): Promise<ReturnType<typeof summarizeProfile> | undefined> {
  const profDir = mkdtempSync(join(tmpdir(), "portcullis-bench-prof-"));
  const cmd = gatewayCommand(REPO_ROOT, ["--cpu-prof", `--cpu-prof-dir=${profDir}`]);
  try {
    await withGateway(cmd, shape, upstream, async (gw) => {
      const client = await connectHttp(gw.url, "bench-profile");
      try {
        await load(gw, client);
      } finally {
        await client.close();
      }
    });
    const file = findProfile(profDir);
    if (!file) {
      log("warning: the profiled gateway wrote no .cpuprofile");
      return undefined;
    }
    return summarizeProfile(file);
  } finally {
    if (process.env.BENCH_KEEP_PROFILES !== "1") rmSync(profDir, { recursive: true, force: true });
    else log(`  profile kept in ${profDir}`);
  }
}

/**
 * One sequential session against a gateway that time-stamps each call's stages
 * (bench/stage-timer.mjs): where a call's time goes inside the gateway, stage by stage. Its own
 * gateway, so that the stamps never touch the latency rows.
 */
async function measureStages(upstream: Upstream): Promise<StageReport> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-stages-"));
  const file = join(dir, "stages.json");
  const timer = pathToFileURL(join(REPO_ROOT, "bench/stage-timer.mjs")).href;
  const cmd = gatewayCommand(REPO_ROOT, ["--import", timer]);
  // The child inherits the environment: this names the file its summaries go to.
  process.env.PORTCULLIS_BENCH_STAGES = file;
  try {
    return await withGateway(cmd, { kind: "calls" }, upstream, async (gw) => {
      const client = await connectHttp(gw.url, "bench-stages");
      const collect = async (): Promise<StageReport> => {
        rmSync(file, { force: true });
        process.kill(gw.pid, "SIGUSR2");
        for (let waited = 0; !existsSync(file); waited += 20) {
          if (waited > 5_000) throw new Error("the stage-timed gateway wrote no summary");
          await new Promise((r) => setTimeout(r, 20));
        }
        return JSON.parse(readFileSync(file, "utf8")) as StageReport;
      };
      try {
        await callLatencies(client, S.warmup, 0, 11);
        await collect();
        await callLatencies(client, 0, S.latencyCalls, 12);
        return await collect();
      } finally {
        await client.close();
      }
    });
  } finally {
    delete process.env.PORTCULLIS_BENCH_STAGES;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A path's latency calls in blocks alternating with direct calls (see pairedLatencies). */
function paired(client: Client, upstream: Upstream): Promise<{ direct: number[]; gateway: number[] }> {
  const blocks = S.latencyBlocks;
  return pairedLatencies(client, upstream.url, blocks, Math.ceil(S.latencyCalls / blocks));
}

function targetsOf(r: Omit<BenchResults, "targets" | "profiles">): Target[] {
  const { http: httpDirect, stdio: stdioDirect } = r.directAlongside;
  const overhead = r.http.p50 - httpDirect.p50;
  const stdioOverhead = r.stdio.p50 - stdioDirect.p50;
  const hop = (mode: "http" | "stdio"): string => {
    const p = r.hopFloor[mode].durable;
    return `; a do-nothing proxy with one fsync adds +${ms(p.hop.p50 - p.direct.p50)} on this host`;
  };
  const floor = `; the answer waits for one durable commit, ${ms(r.commitFloor.p50)} after an idle spell on this disk`;
  const best = Math.max(...r.throughput.map((t) => t.callsPerSecond));
  const at64 = r.throughput.find((t) => t.sessions === 64);
  const list10k = r.lists.find((l) => l.registered === 10_000);
  const rss = Math.max(
    r.rssIdleBytes,
    r.rssStdioBytes,
    ...r.throughput.map((t) => t.maxRssBytes),
    r.sustained.maxRssBytes,
    ...r.lists.map((l) => l.rssBytes),
  );
  return [
    {
      what: "gateway p50 vs direct call (HTTP)",
      target: `≤ +${TARGET_OVERHEAD_MS} ms`,
      measured: `+${ms(overhead)} (${ms(r.http.p50)} vs ${ms(httpDirect.p50)}, measured in alternating blocks${floor}${hop("http")})`,
      pass: overhead <= TARGET_OVERHEAD_MS,
    },
    {
      what: "gateway p50 vs direct call (stdio)",
      target: `≤ +${TARGET_OVERHEAD_MS} ms`,
      measured: `+${ms(stdioOverhead)} (${ms(r.stdio.p50)} vs ${ms(stdioDirect.p50)}, measured in alternating blocks${floor}${hop("stdio")})`,
      pass: stdioOverhead <= TARGET_OVERHEAD_MS,
    },
    {
      what: "audited calls/s (HTTP, best of 1/8/64 sessions)",
      target: `≥ ${int(TARGET_CALLS_PER_S)}`,
      measured: `${int(best)} (64 sessions: ${int(at64?.callsPerSecond ?? Number.NaN)})`,
      pass: best >= TARGET_CALLS_PER_S,
    },
    {
      what: "tools/list, 10,000-tool registry, one page p50 (the gateway's answer over HTTP)",
      target: `< ${TARGET_LIST_MS} ms`,
      measured: list10k
        ? `${ms(list10k.onePageRaw.p50)} (p99 ${ms(list10k.onePageRaw.p99)}; with the SDK client's own processing ${ms(list10k.onePage.p50)})`
        : "not run",
      pass: list10k !== undefined && list10k.onePageRaw.p50 < TARGET_LIST_MS,
    },
    {
      what: "RSS, highest seen (idle, load, sustained load, 10,000 tools)",
      target: `< ${mb(TARGET_RSS_BYTES)}`,
      measured: mb(rss),
      pass: rss < TARGET_RSS_BYTES,
    },
  ];
}

// undici's fetch detaches its listener from the SDK client's session AbortSignal only when the
// request is garbage-collected; thousands of calls on one session trip this warning in the load
// client. It says nothing about the gateway, so only that one is silenced.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name === "MaxListenersExceededWarning" && w.message.includes("AbortSignal")) return;
  process.stderr.write(`${w.name}: ${w.message}\n`);
});

async function main(): Promise<void> {
  const started = performance.now();
  const machine = machineInfo(REPO_ROOT);
  log(
    `portcullis benchmark — ${machine.cpuModel}, ${machine.cores} cores, ${machine.memory}, node ${machine.node}, load ${machine.loadAverage}`,
  );
  const buildNote = build();
  const cmd = gatewayCommand(REPO_ROOT);
  const upstream = await startUpstream();
  try {
    log("direct calls to the upstream…");
    const direct = summarize(await directLatencies(upstream.url, S.warmup, S.latencyCalls));
    log(`  p50 ${ms(direct.p50)}, p99 ${ms(direct.p99)}`);
    const durableFloor = durableCommitPairs(S.warmup, S.latencyCalls);
    log(
      `  two durable SQLite commits in a row (the audit floor): p50 ${ms(durableFloor.p50)}, p99 ${ms(durableFloor.p99)}`,
    );
    const idleFloor = durableCommitPairs(S.warmup, S.latencyCalls, FLOOR_IDLE_MS);
    log(
      `  the same, ${FLOOR_IDLE_MS} ms idle before each commit (as sequential calls meet them): p50 ${ms(idleFloor.p50)}, p99 ${ms(idleFloor.p99)}`,
    );
    const commitFloor = durableCommitPairs(S.warmup, S.latencyCalls, FLOOR_IDLE_MS, 1);
    log(
      `  one durable commit after ${FLOOR_IDLE_MS} ms idle (what a default answer waits for): p50 ${ms(commitFloor.p50)}, p99 ${ms(commitFloor.p99)}`,
    );
    const ceiling = await directThroughput(upstream.url, 64, S.throughputMs / 2, upstream.pid);
    log(
      `  64 concurrent: ${int(ceiling.callsPerSecond)} calls/s (${ms(ceiling.cpuMsPerCall, 2)} CPU per call, client and server)`,
    );

    log("the host's floor: a do-nothing forwarding proxy, with and without one fsync…");
    const hopFloor = {} as BenchResults["hopFloor"];
    for (const mode of ["http", "stdio"] as HopMode[]) {
      hopFloor[mode] = {} as BenchResults["hopFloor"]["http"];
      for (const kind of ["durable", "bare"] as const) {
        const hop = await startHopFloor(upstream.url, mode, kind === "durable");
        try {
          const blocks = S.latencyBlocks;
          const pair = await pairedCalls(
            hop.call,
            upstream.url,
            S.hopWarmup,
            blocks,
            Math.ceil(S.latencyCalls / blocks),
          );
          const line = { direct: summarize(pair.direct), hop: summarize(pair.gateway) };
          hopFloor[mode][kind] = line;
          log(
            `  ${mode}, ${kind === "durable" ? "one fsync" : "no fsync"}: p50 ${ms(line.hop.p50)} (direct alongside ${ms(line.direct.p50)}, +${ms(line.hop.p50 - line.direct.p50)})`,
          );
        } finally {
          await hop.close();
        }
      }
    }

    log("gateway over Streamable HTTP…");
    const callPhase = await withGateway(cmd, { kind: "calls" }, upstream, async (gw) => {
      const client = await connectHttp(gw.url);
      let http: LatencySummary;
      let httpDirect: LatencySummary;
      let httpSplit: ReturnType<typeof splitBetween>;
      let httpRaw: { direct: LatencySummary; gateway: LatencySummary };
      try {
        await callLatencies(client, S.warmup, 0);
        const before = await scrapeMetrics(gw.url);
        const pair = await paired(client, upstream);
        http = summarize(pair.gateway);
        httpDirect = summarize(pair.direct);
        httpSplit = splitBetween(before, await scrapeMetrics(gw.url));
        const blocks = S.latencyBlocks;
        const raw = await pairedCalls(
          rawToolCaller(client, gw.url),
          upstream.url,
          S.hopWarmup,
          blocks,
          Math.ceil(S.latencyCalls / blocks),
        );
        httpRaw = { direct: summarize(raw.direct), gateway: summarize(raw.gateway) };
      } finally {
        await client.close();
      }
      log(
        `  sequential: p50 ${ms(http.p50)}, p99 ${ms(http.p99)} (direct alongside: p50 ${ms(httpDirect.p50)})`,
      );
      log(
        `  sequential, raw JSON-RPC POSTs instead of the SDK client: p50 ${ms(httpRaw.gateway.p50)} (direct alongside: p50 ${ms(httpRaw.direct.p50)})`,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      const rssIdleBytes = rssOf(gw.pid);
      log(`  RSS idle ${mb(rssIdleBytes)}`);
      const lines: ThroughputLine[] = [];
      for (const sessions of S.sessions) lines.push(await measureThroughput(gw, sessions));
      const sustained = await measureSustained(gw);
      return { http, httpDirect, httpSplit, httpRaw, rssIdleBytes, lines, sustained };
    });

    log("inside the gateway: one sequential call's stages, time-stamped…");
    const stages = await measureStages(upstream);
    for (const st of stages.stages)
      log(`  ${st.from} → ${st.to}: p50 ${Math.round(st.p50Us)} µs${st.host ? " (host)" : ""}`);

    log("gateway over stdio…");
    const dep = createBenchDeployment({ kind: "calls" }, upstream.url);
    let stdio: LatencySummary;
    let stdioDirect: LatencySummary;
    let rssStdioBytes: number;
    try {
      const session = await connectStdio(cmd, dep.configPath);
      try {
        await callLatencies(session.client, S.warmup, 0);
        const pair = await paired(session.client, upstream);
        stdio = summarize(pair.gateway);
        stdioDirect = summarize(pair.direct);
        rssStdioBytes = rssOf(session.pid);
      } finally {
        await session.close();
      }
    } finally {
      dep.cleanup();
    }
    log(
      `  sequential: p50 ${ms(stdio.p50)}, p99 ${ms(stdio.p99)} (direct alongside: p50 ${ms(stdioDirect.p50)}), RSS ${mb(rssStdioBytes)}`,
    );

    log("gateway over Streamable HTTP, answers held for the outcome record (audit.outcomeBeforeAnswer)…");
    const strictPair = await withGateway(
      cmd,
      { kind: "calls", outcomeBeforeAnswer: true },
      upstream,
      async (gw) => {
        const client = await connectHttp(gw.url);
        try {
          await callLatencies(client, S.warmup, 0);
          return await paired(client, upstream);
        } finally {
          await client.close();
        }
      },
    );
    const httpStrict = summarize(strictPair.gateway);
    const httpStrictDirect = summarize(strictPair.direct);
    log(
      `  sequential: p50 ${ms(httpStrict.p50)}, p99 ${ms(httpStrict.p99)} (direct alongside: p50 ${ms(httpStrictDirect.p50)})`,
    );

    log("tools/list…");
    const lists: ListLine[] = [];
    for (const n of S.listSizes) lists.push(await measureList(cmd, upstream, n));

    log("startup…");
    const startup = await measureStartup(cmd, upstream);

    const partial = {
      command: QUICK ? "BENCH_QUICK=1 npm run bench" : "npm run bench",
      gatewayCommand: `${cmd.shown} serve --http|--stdio --config <temp dir>/mcp.config.json`,
      machine,
      buildNote,
      durationMs: 0,
      settings: Object.fromEntries(
        Object.entries(S).map(([k, v]) => [k, Array.isArray(v) ? v.join("/") : String(v)]),
      ),
      direct,
      durableFloor,
      idleFloor,
      commitFloor,
      floorIdleMs: FLOOR_IDLE_MS,
      hopFloor,
      directCeiling: ceiling,
      http: callPhase.http,
      httpRaw: callPhase.httpRaw,
      directAlongside: { http: callPhase.httpDirect, stdio: stdioDirect, httpStrict: httpStrictDirect },
      ...(callPhase.httpSplit ? { httpSplit: callPhase.httpSplit } : {}),
      stages,
      stdio,
      httpStrict,
      throughput: callPhase.lines,
      sustained: callPhase.sustained,
      rssIdleBytes: callPhase.rssIdleBytes,
      rssStdioBytes,
      lists,
      startup,
    };
    const targets = targetsOf(partial);
    for (const t of targets)
      log(`  ${t.pass ? "pass" : "MISS"}  ${t.what}: ${t.measured} (target ${t.target})`);

    const profiles: BenchResults["profiles"] = [];
    const missed = (prefix: string) => targets.some((t) => t.what.startsWith(prefix) && !t.pass);
    const want = (prefix: string) => PROFILE === "always" || (PROFILE === "auto" && missed(prefix));
    if (want("gateway p50")) {
      // Latency is the sequential path: one session, one call at a time, as the latency rows measure.
      log("profiling the gateway under sequential calls…");
      const summary = await profileUnder(upstream, { kind: "calls" }, async (_gw, client) => {
        const deadline = performance.now() + S.profileMs;
        for (let i = 0; performance.now() < deadline; i++) await callItem(client, 9, i);
      });
      if (summary)
        profiles.push({ why: `tool calls, one session, sequential, for ${S.profileMs / 1000} s`, summary });
    }
    if (want("audited calls")) {
      log("profiling the gateway under 64-session load…");
      const summary = await profileUnder(upstream, { kind: "calls" }, async (gw) => {
        await throughput(gw.url, 64, S.profileMs, gw.pid);
      });
      if (summary) profiles.push({ why: `tool calls, 64 sessions for ${S.profileMs / 1000} s`, summary });
    }
    if (want("tools/list")) {
      log("profiling tools/list over 10,000 tools…");
      const summary = await profileUnder(upstream, { kind: "list", tools: 10_000 }, async (_gw, client) => {
        const deadline = performance.now() + S.profileMs;
        while (performance.now() < deadline) await client.listTools({});
      });
      if (summary)
        profiles.push({
          why: `tools/list first page over 10,000 tools for ${S.profileMs / 1000} s`,
          summary,
        });
    }

    const results: BenchResults = { ...partial, targets, profiles, durationMs: performance.now() - started };
    const text = renderResults(results);
    log(`\n${text}`);
    if (!QUICK || process.env.BENCH_WRITE === "1") {
      writeBenchmarksFile(join(REPO_ROOT, "BENCHMARKS.md"), text);
      log("written to BENCHMARKS.md");
    }
  } finally {
    await upstream.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
