import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { MachineInfo } from "./machine.js";
import type { TimeSplit } from "./metrics.js";
import type { ProfileSummary } from "./profile.js";
import { int, mb, ms, type LatencySummary } from "./stats.js";

export interface ThroughputLine {
  sessions: number;
  callsPerSecond: number;
  calls: number;
  errors: number;
  firstError?: string;
  latency: LatencySummary;
  split?: TimeSplit;
  maxRssBytes: number;
  gatewayCpuMs: number;
  clientCpuMs: number;
}

export interface ListLine {
  registered: number;
  visible: number;
  pages: number;
  startupMs: number;
  onePage: LatencySummary;
  onePageRaw: LatencySummary;
  full: LatencySummary;
  rssBytes: number;
}

export interface Target {
  what: string;
  target: string;
  measured: string;
  pass: boolean;
}

/** What bench/stage-timer.mjs writes: per stage of a call, p50 and mean in microseconds. */
export interface StageReport {
  calls: number;
  totalP50Us: number;
  stages: {
    from: string;
    to: string;
    what: string;
    host: boolean;
    n: number;
    p50Us: number;
    meanUs: number;
  }[];
}

export interface BenchResults {
  command: string;
  gatewayCommand: string;
  machine: MachineInfo;
  buildNote: string;
  durationMs: number;
  settings: Record<string, string>;
  /** Direct calls alone, before any gateway runs. */
  direct: LatencySummary;
  /**
   * Direct calls in blocks alternating with each latency path's blocks: the baseline each path's
   * overhead is computed against (same minutes of the same shared machine).
   */
  directAlongside: { http: LatencySummary; stdio: LatencySummary; httpStrict: LatencySummary };
  /** Two durable SQLite commits in a row on the same disk: the floor under an audited call. */
  durableFloor: LatencySummary;
  /** The same, the thread idle for floorIdleMs before each commit, as between sequential calls. */
  idleFloor: LatencySummary;
  /** One durable commit after floorIdleMs idle: what a default answer waits for (the intent record). */
  commitFloor: LatencySummary;
  floorIdleMs: number;
  /**
   * A do-nothing forwarding proxy in its own process (bench/hop-floor.ts), over each transport, with
   * one fsync before forwarding (`durable`) and without (`bare`); each with the direct calls it
   * alternated with. The host's floor under any gateway; what the gateway adds above it is its own.
   */
  hopFloor: Record<
    "http" | "stdio",
    Record<"durable" | "bare", { direct: LatencySummary; hop: LatencySummary }>
  >;
  directCeiling: { callsPerSecond: number; cpuMsPerCall: number };
  http: LatencySummary;
  /** The HTTP gateway called with raw JSON-RPC POSTs (no SDK client), with its alternating direct calls. */
  httpRaw: { direct: LatencySummary; gateway: LatencySummary };
  httpSplit?: TimeSplit;
  /** One sequential call's stages inside the HTTP gateway, time-stamped (bench/stage-timer.mjs). */
  stages?: StageReport;
  stdio: LatencySummary;
  /** Sequential HTTP calls with audit.outcomeBeforeAnswer: each answer held for both commits. */
  httpStrict: LatencySummary;
  throughput: ThroughputLine[];
  /**
   * 64 sessions on the same gateway for longer than the loop guard's window, so that its state
   * (one key per distinct call, up to maxTrackedCalls) and the heap reach their steady size.
   */
  sustained: {
    sessions: number;
    durationMs: number;
    callsPerSecond: number;
    errors: number;
    maxRssBytes: number;
    endRssBytes: number;
  };
  rssIdleBytes: number;
  rssStdioBytes: number;
  lists: ListLine[];
  startup: { readyMs: number[]; firstListMs: number[]; tools: number };
  targets: Target[];
  profiles: { why: string; summary: ProfileSummary }[];
}

/** The stage table: where one sequential call's time goes inside the HTTP gateway. */
function renderStages(st: StageReport): string[] {
  const us = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} µs` : "—");
  const sum = (host: boolean) => st.stages.filter((s) => s.host === host).reduce((a, s) => a + s.p50Us, 0);
  const out = [
    `Where one call's time goes inside the HTTP gateway (bench/stage-timer.mjs: time stamps at each stage of ${int(st.calls)} ` +
      `sequential calls after the warm-up; p50 of each stage, so the rows need not add up to the p50 of the whole, ${us(st.totalP50Us)} from request read to answer written):`,
    "",
    "| stage | what runs | p50 | mean | decided by |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const s of st.stages) {
    const missing = s.n < st.calls * 0.9 ? ` (stamped in ${int(s.n)} calls only)` : "";
    out.push(
      `| ${s.from} → ${s.to} | ${s.what}${missing} | ${us(s.p50Us)} | ${us(s.meanUs)} | ${s.host ? "the host" : "the gateway's code"} |`,
    );
  }
  out.push(
    "",
    `The gateway's own stages add up to ${us(sum(false))} at p50; the host's two waits (the fsync, the upstream process) to ${us(sum(true))}. ` +
      `Not in the table: the client's side and the wake-up of the gateway's process when a request arrives.`,
  );
  return out;
}

const BEGIN = "<!-- bench:results:begin (written by `npm run bench`; edit outside these markers) -->";
const END = "<!-- bench:results:end -->";

function pct(share: number): string {
  return Number.isFinite(share) ? `${(share * 100).toFixed(1)} %` : "n/a";
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)]!;
}

function latencyRow(name: string, l: LatencySummary): string {
  return `| ${name} | ${int(l.n)} | ${ms(l.p50)} | ${ms(l.p90)} | ${ms(l.p99)} | ${ms(l.mean)} |`;
}

export function renderResults(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`## Results of the last run`, "");
  out.push(`- command: \`${r.command}\` (gateway child: \`${r.gatewayCommand}\`)`);
  out.push(`- date: ${m.date}; took ${(r.durationMs / 1000).toFixed(0)} s`);
  out.push(`- node ${m.node}; ${m.os}`);
  out.push(`- CPU: ${m.cpuModel}, ${m.cores} cores; memory ${m.memory}`);
  out.push(
    `- load average at the start (1/5/15 min): ${m.loadAverage} — the machine is shared, so rates vary run to run`,
  );
  out.push(`- commit ${m.commit}; ${r.buildNote}`);
  out.push(
    `- settings: ${Object.entries(r.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}`,
    "",
  );

  out.push("### Targets", "", "| what | target | measured | result |", "| --- | --- | --- | --- |");
  for (const t of r.targets)
    out.push(`| ${t.what} | ${t.target} | ${t.measured} | ${t.pass ? "pass" : "**MISS**"} |`);
  out.push("");

  out.push("### Latency of one tool call (sequential, one session)", "");
  out.push("| path | calls | p50 | p90 | p99 | mean |", "| --- | --- | --- | --- | --- | --- |");
  const d = r.directAlongside;
  out.push(
    latencyRow(
      "direct to the upstream (node:http, keep-alive; the upstream is its own process), alone before the gateway phases",
      r.direct,
    ),
  );
  out.push(latencyRow("two durable SQLite commits in a row, no gateway (the audit floor)", r.durableFloor));
  out.push(
    latencyRow(
      `the same, ${r.floorIdleMs} ms idle before each commit (as sequential calls meet them; commits only)`,
      r.idleFloor,
    ),
  );
  out.push(
    latencyRow(
      `one durable commit after ${r.floorIdleMs} ms idle (what a default answer waits for: the intent record)`,
      r.commitFloor,
    ),
  );
  const hf = r.hopFloor;
  const hopRows: [string, { direct: LatencySummary; hop: LatencySummary }][] = [
    ["HTTP, one fsync of 4 KB before forwarding", hf.http.durable],
    ["HTTP, no fsync", hf.http.bare],
    ["stdio, one fsync of 4 KB before forwarding", hf.stdio.durable],
    ["stdio, no fsync", hf.stdio.bare],
  ];
  for (const [what, pair] of hopRows) {
    out.push(latencyRow(`direct, in blocks alternating with the next row's`, pair.direct));
    out.push(
      latencyRow(`a do-nothing forwarding proxy in its own process (the host's floor), ${what}`, pair.hop),
    );
  }
  out.push(latencyRow("direct, in blocks alternating with the HTTP gateway's (its baseline)", d.http));
  out.push(latencyRow("through the gateway, Streamable HTTP, audited", r.http));
  out.push(latencyRow("direct, in blocks alternating with the next row's", r.httpRaw.direct));
  out.push(
    latencyRow(
      "through the gateway, Streamable HTTP, audited, called with raw JSON-RPC POSTs on the same session (no SDK client)",
      r.httpRaw.gateway,
    ),
  );
  out.push(latencyRow("direct, in blocks alternating with the stdio gateway's (its baseline)", d.stdio));
  out.push(latencyRow("through the gateway, stdio, audited", r.stdio));
  out.push(latencyRow("direct, in blocks alternating with the next row's", d.httpStrict));
  out.push(
    latencyRow(
      "through the gateway, Streamable HTTP, audited, answer held for the outcome record (audit.outcomeBeforeAnswer)",
      r.httpStrict,
    ),
  );
  out.push("");
  out.push(
    `Each gateway path runs its ${int(r.http.n)} calls in blocks that alternate with blocks of as many direct calls, ` +
      `and is compared with those: the same loop's speed drifts on a shared machine within minutes ` +
      `(the direct p50 was ${ms(r.direct.p50)} alone at the start, ${ms(d.http.p50)} / ${ms(d.stdio.p50)} / ${ms(d.httpStrict.p50)} beside the three paths).`,
  );
  out.push("");
  out.push(
    `Gateway overhead at p50: HTTP +${ms(r.http.p50 - d.http.p50)} (×${(r.http.p50 / d.http.p50).toFixed(2)}), ` +
      `stdio +${ms(r.stdio.p50 - d.stdio.p50)} (×${(r.stdio.p50 / d.stdio.p50).toFixed(2)}); ` +
      `at p99: HTTP +${ms(r.http.p99 - d.http.p99)} (×${(r.http.p99 / d.http.p99).toFixed(2)}), ` +
      `stdio +${ms(r.stdio.p99 - d.stdio.p99)} (×${(r.stdio.p99 / d.stdio.p99).toFixed(2)}). ` +
      `An audited call writes two durable records: the intent before the upstream is touched, which the answer ` +
      `waits for (${ms(r.commitFloor.p50)} at p50 on this disk after an idle spell), and the outcome, queued before ` +
      `the answer is sent and committed right after it, while the client reads the answer (its fsync left to the next call's for up to 2 ms). So the gateway's own ` +
      `share of the overhead is HTTP +${ms(r.http.p50 - d.http.p50 - r.commitFloor.p50)}, stdio ` +
      `+${ms(r.stdio.p50 - d.stdio.p50 - r.commitFloor.p50)}. Holding each answer for its outcome record too ` +
      `(audit.outcomeBeforeAnswer) costs HTTP +${ms(r.httpStrict.p50 - d.httpStrict.p50 - (r.http.p50 - d.http.p50))} at p50 ` +
      `(${ms(r.httpStrict.p50)}; both commits alone take ${ms(r.idleFloor.p50)} after idle spells, ${ms(r.durableFloor.p50)} back to back).`,
  );
  const over = (p: { direct: LatencySummary; hop: LatencySummary }): number => p.hop.p50 - p.direct.p50;
  out.push(
    "",
    `The host's floor (bench/hop-floor.ts): a proxy that does nothing but read the JSON-RPC request, ` +
      `fsync one 4 KB write and forward the same GET, in a process of its own as the gateway is, adds ` +
      `HTTP +${ms(over(hf.http.durable))} and stdio +${ms(over(hf.stdio.durable))} at p50 on this machine ` +
      `(without the fsync +${ms(over(hf.http.bare))} and +${ms(over(hf.stdio.bare))}: the extra process hop alone). ` +
      `No durably auditing gateway on this host answers faster. Called with raw JSON-RPC POSTs instead of the ` +
      `MCP SDK client, the HTTP gateway adds +${ms(r.httpRaw.gateway.p50 - r.httpRaw.direct.p50)} ` +
      `(the SDK client's own share: ${ms(r.http.p50 - d.http.p50 - (r.httpRaw.gateway.p50 - r.httpRaw.direct.p50))}). ` +
      `Above the floor the gateway adds ` +
      `HTTP +${ms(r.http.p50 - d.http.p50 - over(hf.http.durable))} and stdio +${ms(r.stdio.p50 - d.stdio.p50 - over(hf.stdio.durable))}: ` +
      `MCP on both sides (the SDK client, JSON-RPC, Streamable HTTP), identity, authorisation, argument validation, ` +
      `two SQLite records with their Merkle nodes, metrics and logs.`,
  );
  if (r.httpSplit) {
    const s = r.httpSplit;
    out.push(
      "",
      `Inside the gateway (its own histograms, HTTP phase): a call takes ${ms(s.callMs)} on average, of which the durable ` +
        `audit intent record ${ms(s.auditMs)} (${pct(s.auditShare)}) and the upstream ${ms(s.upstreamMs)} (${pct(s.upstreamShare)}); ` +
        `the rest of the client-measured time is the MCP transport (HTTP, JSON-RPC, SDK) on both sides.`,
    );
  }
  if (r.stages) out.push("", ...renderStages(r.stages));
  out.push("");

  out.push("### Throughput, Streamable HTTP, audited (one MCP session per concurrent agent)", "");
  out.push(
    "| sessions | calls/s | calls | errors | p50 | p99 | gateway CPU per call | client CPU per call | audit intent wait (share of call) | max RSS |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const t of r.throughput) {
    out.push(
      `| ${t.sessions} | ${int(t.callsPerSecond)} | ${int(t.calls)} | ${t.errors}${t.firstError ? ` (${t.firstError.slice(0, 80)})` : ""} | ${ms(t.latency.p50)} | ${ms(t.latency.p99)} | ` +
        `${ms(t.gatewayCpuMs, 2)} | ${ms(t.clientCpuMs, 2)} | ${t.split ? `${ms(t.split.auditMs)} (${pct(t.split.auditShare)})` : "n/a"} | ${mb(t.maxRssBytes)} |`,
    );
  }
  out.push(
    "",
    `The machine's ceiling for comparison: plain keep-alive GETs to the same upstream, 64 concurrent, no gateway: ` +
      `${int(r.directCeiling.callsPerSecond)} calls/s at ${ms(r.directCeiling.cpuMsPerCall, 2)} CPU per call (client and upstream together). ` +
      `Calls/s through the gateway are bounded by 2 cores / (gateway CPU + client CPU + upstream CPU per call).`,
    "",
  );

  out.push("### tools/list, filtered for an identity that sees half of the registry", "");
  out.push(
    "| registered | visible | pages | one page, raw JSON-RPC p50 / p99 | one page, SDK client p50 / p99 | full listing, SDK client p50 / p99 | gateway startup | RSS |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const l of r.lists) {
    out.push(
      `| ${int(l.registered)} | ${int(l.visible)} | ${l.pages} | ${ms(l.onePageRaw.p50)} / ${ms(l.onePageRaw.p99)} | ${ms(l.onePage.p50)} / ${ms(l.onePage.p99)} | ` +
        `${ms(l.full.p50, 1)} / ${ms(l.full.p99, 1)} | ${ms(l.startupMs, 0)} | ${mb(l.rssBytes)} |`,
    );
  }
  out.push(
    "",
    "Raw JSON-RPC is the gateway's answer as an HTTP client receives it. The SDK client additionally validates the " +
      "page and compiles an ajv validator for every tool's outputSchema on every tools/list (Client.cacheToolMetadata), " +
      "which is client CPU, not gateway time.",
    "",
  );

  out.push("### Memory and startup", "");
  out.push(`- RSS of the HTTP gateway at idle (after warm-up): ${mb(r.rssIdleBytes)}`);
  out.push(
    `- RSS of the HTTP gateway under load: ${mb(Math.max(...r.throughput.map((t) => t.maxRssBytes)))} (max sampled every 250 ms)`,
  );
  const sus = r.sustained;
  out.push(
    `- RSS of the HTTP gateway under sustained load (${sus.sessions} sessions for ${Math.round(sus.durationMs / 1000)} s, ` +
      `past the loop guard's 60 s window, every call distinct): max ${mb(sus.maxRssBytes)}, ${mb(sus.endRssBytes)} at the end; ` +
      `${int(sus.callsPerSecond)} calls/s, ${sus.errors} errors`,
  );
  out.push(`- RSS of the stdio gateway after its latency run: ${mb(r.rssStdioBytes)}`);
  out.push(
    `- startup with a ${r.startup.tools}-operation OpenAPI spec (spawn → "Streamable HTTP at"): median ${ms(median(r.startup.readyMs), 0)} ` +
      `(runs: ${r.startup.readyMs.map((v) => ms(v, 0)).join(", ")}); to the first successful tools/list: median ${ms(median(r.startup.firstListMs), 0)}`,
  );
  out.push("");

  for (const p of r.profiles) {
    out.push(`### CPU profile: ${p.why}`, "");
    out.push(
      `\`node --cpu-prof\` on the gateway child; ${ms(p.summary.busyMs, 0)} of sampled non-idle CPU.`,
      "",
    );
    out.push(
      "| stage (whole stack: a sample counts for the first stage on it) | ms | share |",
      "| --- | --- | --- |",
    );
    for (const st of p.summary.stages) out.push(`| ${st.stage} | ${st.ms.toFixed(0)} | ${pct(st.share)} |`);
    out.push("", "| where (self time) | ms | share |", "| --- | --- | --- |");
    for (const a of p.summary.areas.slice(0, 14))
      out.push(`| ${a.area} | ${a.ms.toFixed(0)} | ${pct(a.share)} |`);
    out.push("", "| top frames (self time) | ms | share |", "| --- | --- | --- |");
    for (const f of p.summary.top.slice(0, 20))
      out.push(`| \`${f.frame.replaceAll("|", "\\|")}\` | ${f.ms.toFixed(0)} | ${pct(f.share)} |`);
    out.push("");
  }
  return out.join("\n");
}

const HEADER = `# Benchmarks

How fast Portcullis is, measured by \`npm run bench\` (bench/run.ts) on the machine named below.
The section between the markers is rewritten by every run; the analysis after it is written by hand.
`;

/** Replaces the generated section of BENCHMARKS.md, keeping what was written around it. */
export function writeBenchmarksFile(file: string, results: string): void {
  const block = `${BEGIN}\n\n${results}\n${END}`;
  let text = existsSync(file) ? readFileSync(file, "utf8") : `${HEADER}\n${BEGIN}\n${END}\n`;
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  text =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${block}${text.slice(end + END.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}
