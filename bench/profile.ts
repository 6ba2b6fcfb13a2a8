import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of a V8 .cpuprofile (what `node --cpu-prof` writes) this summary reads. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled time that was not idle, in milliseconds. */
  busyMs: number;
  /** Self time by function, largest first. */
  top: { frame: string; ms: number; share: number }[];
  /** Self time by where the code lives (ours by directory, dependencies by package). */
  areas: { area: string; ms: number; share: number }[];
  /** Time by pipeline stage: each sample goes to the first stage found on its stack. */
  stages: { stage: string; ms: number; share: number }[];
}

/**
 * Stages in priority order: a sample whose stack holds an audit frame is audit time even though
 * the gateway and the SDK are below it. Work resumed after an await has only the frames since the
 * await, so socket reads of the upstream answer land in "node runtime".
 */
const STAGES: { stage: string; test: (url: string, fn: string) => boolean }[] = [
  {
    stage: "startup (module loading, config, specs)",
    test: (url, fn) =>
      url.startsWith("node:internal/modules") ||
      (/\/(dist|src)\/server\/runtime\./.test(url) && fn === "start"),
  },
  {
    stage: "audit log (src/audit + better-sqlite3, incl. fsync)",
    test: (url) => /\/(dist|src)\/audit\/|better-sqlite3/.test(url),
  },
  {
    stage: "REST connector (src/connectors)",
    test: (url) => /\/(dist|src)\/connectors\//.test(url),
  },
  { stage: "logging (pino)", test: (url) => /node_modules\/(pino|sonic-boom|@pinojs)/.test(url) },
  { stage: "metrics (prom-client)", test: (url) => /node_modules\/prom-client/.test(url) },
  {
    stage: "gateway pipeline (src/gateway, src/scopes)",
    test: (url) => /\/(dist|src)\/(gateway|scopes)\//.test(url),
  },
  {
    stage: "MCP protocol (SDK, zod, src/server/streamable-http)",
    test: (url) =>
      /@modelcontextprotocol\/sdk|node_modules\/zod\/|\/(dist|src)\/server\/streamable-http\./.test(url),
  },
  { stage: "HTTP server (src/server)", test: (url) => /\/(dist|src)\/server\//.test(url) },
];

const IDLE = new Set(["(idle)", "(program)"]);

function shortUrl(url: string): string {
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (mod) return `${mod[1]}/${mod[2]!.split("/").slice(-1)[0]}`;
  const ours = /\/(?:dist|src)\/(.*)$/.exec(url);
  if (ours) return `src/${ours[1]!.replace(/\.js$/, ".ts")}`;
  return url.replace(/^file:\/\//, "");
}

/** Where a frame's code lives: our module directory, a dependency, node itself or the VM. */
function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "native (V8 builtins, bindings)";
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (mod) return `dep: ${mod[1]}`;
  const ours = /\/(?:dist|src)\/([^/]+)\//.exec(url);
  if (ours) return `ours: src/${ours[1]}/`;
  if (url.startsWith("node:")) return "node: core library";
  return url;
}

export function summarizeProfile(file: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  const stages = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + us);
    const leaf = byId.get(id)?.callFrame.functionName ?? "";
    if (IDLE.has(leaf)) return;
    const urls: [string, string][] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (frame) urls.push([frame.url, frame.functionName]);
    }
    const stage =
      STAGES.find((s) => urls.some(([url, fn]) => s.test(url, fn)))?.stage ??
      (leaf === "(garbage collector)" ? "garbage collector" : "node runtime (sockets, HTTP parsing, timers)");
    stages.set(stage, (stages.get(stage) ?? 0) + us);
  });
  const frames = new Map<string, number>();
  const areas = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (IDLE.has(functionName)) continue;
    busyUs += us;
    const frame =
      `${functionName || "(anonymous)"} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ""}`.trim();
    frames.set(frame, (frames.get(frame) ?? 0) + us);
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, us]) => ({ key: k, ms: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return {
    file,
    busyMs: busyUs / 1000,
    top: rank(frames)
      .slice(0, topN)
      .map(({ key, ms, share }) => ({ frame: key, ms, share })),
    areas: rank(areas).map(({ key, ms, share }) => ({ area: key, ms, share })),
    stages: rank(stages).map(({ key, ms, share }) => ({ stage: key, ms, share })),
  };
}

/** The newest .cpuprofile in a directory (node names them by pid and time). */
export function findProfile(dir: string): string | undefined {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort();
  const last = files.at(-1);
  return last === undefined ? undefined : join(dir, last);
}
