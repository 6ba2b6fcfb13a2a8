import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past what the last full GC kept alive, in percent.
 * Left to itself V8 picks up to 300 % for a process that allocates fast and collects cheaply,
 * which a busy gateway is: under 64 sessions the heap grew to ~4x its live size (RSS 150 → 280 MB)
 * before the first full collection. At 30 % the same load stayed near 170-190 MB for about one
 * full GC a second (~1 % of the CPU); at 20 % its peak is ~8 MB lower again (176-181 against
 * 183-189 MB in four paired runs of 8 then 64 sessions) for no measurable change in calls/s or CPU
 * per call; 10 % saved little more. `serve` sets it once the registry is loaded: set before, it
 * made loading a 10,000-tool registry peak ~10 MB higher. BENCHMARKS.md has the figures.
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 20;

const HEAP_GROWTH_FLAG = /^--heap[-_]growing[-_]percent(?:=|$)/;

/**
 * The V8 flag `serve` sets, or undefined when the operator chose their own with
 * `node --heap-growing-percent=N` (0 restores V8's own choice). Node accepts this flag on its command
 * line only, not in NODE_OPTIONS; both are read, as for the young generation's flags.
 */
export function heapGrowthFlag(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string | undefined {
  if (operatorGave(HEAP_GROWTH_FLAG, execArgv, nodeOptions)) return undefined;
  return `--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`;
}

/** Whether node was started with a flag matching `flag`, on its command line or in NODE_OPTIONS. */
function operatorGave(flag: RegExp, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((arg) => flag.test(arg));
}

/**
 * Applies heapGrowthFlag() to this process. V8 reads this flag at every full GC, so setting it
 * after start-up takes effect (unlike the heap-size flags, which only a fresh process honours).
 */
export function tuneHeapGrowth(): string | undefined {
  const flag = heapGrowthFlag();
  if (flag) setFlagsFromString(flag);
  return flag;
}

/**
 * The most `serve` lets V8's young generation (its new space: two semi-spaces) grow to, in MB.
 * V8 doubles the new space whenever much of it survives scavenges, up to 32 MB on a 64-bit machine
 * with this much memory; a busy gateway gets there within seconds, and all 32 MB stays resident.
 * Capped at 16 MB, RSS under 64 busy sessions peaked 7–16 MB lower (152–161 against 168 MB in
 * paired runs) for 2–5 % fewer calls/s; at 8 MB it fell ~10 MB more but cost 15 % of the calls/s.
 */
export const DEFAULT_YOUNG_GENERATION_MB = 16;

const YOUNG_GENERATION_FLAG =
  /^--(?:(?:max|min)[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor)(?:=|$)/;

/**
 * The young generation's cap in MB for this process, or undefined when the operator sized it
 * themselves: `--max-semi-space-size` (on the command line or in NODE_OPTIONS), or
 * `--min-semi-space-size` or `--semi-space-growth-factor` (command line only: Node refuses them in
 * NODE_OPTIONS).
 */
export function youngGenerationCap(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): number | undefined {
  if (operatorGave(YOUNG_GENERATION_FLAG, execArgv, nodeOptions)) return undefined;
  return DEFAULT_YOUNG_GENERATION_MB;
}

/**
 * Keeps the new space at or under `capMb` without a command-line flag (a heap's size limits are
 * fixed when the process starts). V8 reads its growth factor each time it grows the new space, so
 * after every garbage collection this sets the factor to 1 (no growth) once the new space has
 * reached the cap, and back to V8's 2 when V8 has shrunk it (as it does when allocation slows).
 * It can only stop growth, so it is installed before the registry loads. V8's flags are the
 * process's: a worker thread started meanwhile (`audit verify`'s) keeps its first new space; its
 * records/s changed by 1–2.5 % (within noise) with the factor held at 1 from the start. Returns
 * the stop function.
 */
export function capYoungGeneration(capMb: number): () => void {
  const capBytes = capMb * 1024 * 1024;
  let factor = 2;
  const check = (): void => {
    const want = newSpaceBytes() >= capBytes ? 1 : 2;
    if (want === factor) return;
    factor = want;
    setFlagsFromString(`--semi-space-growth-factor=${want}`);
  };
  check();
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ["gc"] });
  return () => {
    observer.disconnect();
    if (factor !== 2) setFlagsFromString("--semi-space-growth-factor=2");
  };
}

/** The new space's current size (both semi-spaces), in bytes. */
export function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}
