/**
 * `npm run bench:audit`: durable appends/s (sequential and concurrent, group commit), verification
 * records/s, proof generation time, and the per-call audit overhead (intent + outcome) a gateway
 * pays. Reports only; targets: >= 20,000 appends/s concurrent, >= 200,000 records/s verified.
 *
 *   BENCH_RECORDS=200000 npm run bench:audit
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { openAuditLog } from "../src/audit/open.js";
import { auditSchema } from "../src/config/audit-schema.js";
import type { AuditEvent } from "../src/core/governance.js";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const logger = pino({ level: "silent" });
const config = auditSchema.parse({
  origin: "bench.portcullis/audit",
  checkpoint: { everyRecords: 10_000, everyMs: 10_000 },
  redaction: { key: "bench-key-0123456789-0123456789-0123", rules: [{ paths: ["card.number"] }] },
});

function event(i: number, type: AuditEvent["type"] = "call.intent"): AuditEvent {
  return {
    type,
    time: new Date().toISOString(),
    callId: `bench-${i}`,
    identity: { subject: `agent-${i % 50}`, clientId: "bench", scopes: ["orders-read", "orders-write"] },
    connector: "orders",
    tool: "orders__create_order",
    toolHash: "3f".repeat(32),
    manifestHash: "9a".repeat(32),
    arguments: {
      customerId: `c-${i % 1000}`,
      amount: "1999.99",
      items: [{ sku: "A-1", qty: 2 }],
      card: { number: "4111111111111111" },
    },
    decision: { allowed: true },
    ...(type === "call.outcome"
      ? { outcome: { status: "ok" as const, latencyMs: 12, resultDigest: `sha256:${"00".repeat(32)}` } }
      : {}),
  };
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString("en")}/s`;
}

/** CPU time this process spent per item: on a shared machine wall-clock rates mostly measure the neighbours. */
function cpuPer(n: number, since: NodeJS.CpuUsage): string {
  const used = process.cpuUsage(since);
  return `${((used.user + used.system) / n).toFixed(1)} µs CPU each`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-audit-"));
  try {
    const log = await openAuditLog({ config, dir, logger });
    const results: Record<string, string> = {};

    // Sequential: one append at a time, each its own transaction and fsync.
    const seqN = Math.min(2_000, RECORDS);
    let t = performance.now();
    for (let i = 0; i < seqN; i++) await log.append(event(i));
    let ms = performance.now() - t;
    results["durable appends, sequential (1 in flight)"] =
      `${rate(seqN, ms)} (${(ms / seqN).toFixed(3)} ms each)`;

    // Concurrent: many sessions at once; group commit batches them.
    for (const inFlight of [64, 512]) {
      let next = 0;
      const total = RECORDS;
      const cpu = process.cpuUsage();
      t = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < total) await log.append(event(next++));
        }),
      );
      ms = performance.now() - t;
      results[`durable appends, concurrent (${inFlight} in flight)`] =
        `${rate(total, ms)} (${cpuPer(total, cpu)})`;
    }

    // Per-call overhead: intent + outcome for one call, with 1 and 64 concurrent calls.
    for (const calls of [1, 64]) {
      const rounds = 200;
      const lat: number[] = [];
      await Promise.all(
        Array.from({ length: calls }, async (_, c) => {
          for (let r = 0; r < rounds / (calls === 1 ? 1 : 4); r++) {
            const s = performance.now();
            await log.append(event(c * 1000 + r));
            await log.append(event(c * 1000 + r, "call.outcome"));
            lat.push(performance.now() - s);
          }
        }),
      );
      lat.sort((a, b) => a - b);
      const p = (q: number): string => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(2);
      results[`audit overhead per call (intent+outcome), ${calls} concurrent`] =
        `p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`;
    }

    await log.checkpoint();
    const size = log.size();

    // Proofs: inclusion against the latest checkpoint, and consistency.
    const proofs = 1_000;
    t = performance.now();
    for (let i = 0; i < proofs; i++) log.prove(Math.floor(Math.random() * size));
    ms = performance.now() - t;
    results["inclusion proof generation"] =
      `${((ms / proofs) * 1000).toFixed(0)} µs each (tree of ${size.toLocaleString("en")})`;
    t = performance.now();
    for (let i = 0; i < 200; i++) log.consistency(1 + Math.floor(Math.random() * (size - 1)), size);
    results["consistency proof generation"] =
      `${(((performance.now() - t) / 200) * 1000).toFixed(0)} µs each`;

    // Full verification: the fast path on every core (the calling thread and worker threads, the
    // default), on the calling thread alone, and the exact pass a damaged log gets.
    for (const [label, parallel] of [
      [`fast path, ${cpus().length} threads (${cpus().length} cores)`, undefined],
      ["fast path, one thread", { workers: 1 }],
      ["exact pass only (what a damaged log gets)", { workers: 0 }],
    ] as const) {
      const verifyCpu = process.cpuUsage();
      t = performance.now();
      const report = await log.verify(parallel ? { parallel } : {});
      ms = performance.now() - t;
      if (!report.ok) throw new Error(`verification failed: ${JSON.stringify(report.failure)}`);
      results[`full verification, ${label}`] =
        `${rate(report.verified, ms)} (${report.verified.toLocaleString("en")} records in ${Math.round(ms)} ms, ${cpuPer(report.verified, verifyCpu)})`;
    }

    await log.close();
    console.log(
      `audit benchmark (${RECORDS.toLocaleString("en")} records per concurrent run, node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores)`,
    );
    for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(64)} ${v}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
