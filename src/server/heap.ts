import { setFlagsFromString } from "node:v8";

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

const OPERATOR_FLAG = /^--heap[-_]growing[-_]percent(?:=|$)/;

/**
 * The V8 flag `serve` sets, or undefined when the operator chose their own with
 * `node --heap-growing-percent=N` or NODE_OPTIONS (0 there restores V8's own choice).
 */
export function heapGrowthFlag(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string | undefined {
  const given = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)];
  if (given.some((arg) => OPERATOR_FLAG.test(arg))) return undefined;
  return `--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`;
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
