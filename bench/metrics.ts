/** Reads the gateway's own Prometheus counters, to split call time into audit, upstream and the rest. */

export interface MetricTotals {
  callSeconds: number;
  calls: number;
  auditSeconds: number;
  audits: number;
  upstreamSeconds: number;
  commitRecords: number;
  commits: number;
}

function sumOf(text: string, name: string): number {
  let total = 0;
  const prefix = `${name}`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const rest = line.slice(prefix.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

export async function scrapeMetrics(mcpUrl: URL): Promise<MetricTotals | undefined> {
  try {
    const res = await fetch(new URL("/metrics", mcpUrl));
    if (!res.ok) return undefined;
    const text = await res.text();
    return {
      callSeconds: sumOf(text, "portcullis_tool_call_duration_seconds_sum"),
      calls: sumOf(text, "portcullis_tool_call_duration_seconds_count"),
      auditSeconds: sumOf(text, "portcullis_audit_append_duration_seconds_sum"),
      audits: sumOf(text, "portcullis_audit_append_duration_seconds_count"),
      upstreamSeconds: sumOf(text, "portcullis_upstream_duration_seconds_sum"),
      commitRecords: sumOf(text, "portcullis_audit_group_commit_size_sum"),
      commits: sumOf(text, "portcullis_audit_group_commit_size_count"),
    };
  } catch {
    return undefined;
  }
}

export interface TimeSplit {
  /** Mean whole-call time inside the gateway, milliseconds. */
  callMs: number;
  /** Mean wait for the durable intent record, milliseconds, and its share of the call. */
  auditMs: number;
  auditShare: number;
  upstreamMs: number;
  upstreamShare: number;
  /** Mean records per group-commit transaction. */
  groupSize: number;
}

export function splitBetween(
  before: MetricTotals | undefined,
  after: MetricTotals | undefined,
): TimeSplit | undefined {
  if (!before || !after) return undefined;
  const calls = after.calls - before.calls;
  if (calls <= 0) return undefined;
  const callMs = ((after.callSeconds - before.callSeconds) / calls) * 1000;
  const auditMs = ((after.auditSeconds - before.auditSeconds) / calls) * 1000;
  const upstreamMs = ((after.upstreamSeconds - before.upstreamSeconds) / calls) * 1000;
  const commits = after.commits - before.commits;
  return {
    callMs,
    auditMs,
    auditShare: callMs > 0 ? auditMs / callMs : Number.NaN,
    upstreamMs,
    upstreamShare: callMs > 0 ? upstreamMs / callMs : Number.NaN,
    groupSize: commits > 0 ? (after.commitRecords - before.commitRecords) / commits : Number.NaN,
  };
}
