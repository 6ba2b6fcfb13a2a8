/** Percentiles and formatting for the benchmark report. */

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile over sorted samples (milliseconds). */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function ms(value: number, digits = 3): string {
  return Number.isFinite(value) ? `${value.toFixed(digits)} ms` : "n/a";
}

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1_048_576).toFixed(1)} MB` : "n/a";
}

export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count / elapsedMs) * 1000 : Number.NaN;
}

export function int(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en") : "n/a";
}
