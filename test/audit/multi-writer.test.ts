import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openCheckpoint } from "../../src/audit/checkpoint.js";
import { parseVerifierKey } from "../../src/audit/note.js";
import { openAuditLog, openAuditReader } from "../../src/audit/open.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const CHILD = join(import.meta.dirname, "fixtures", "writer-child.ts");

interface Writer {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<void>;
  acked: Set<string>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

function startWriter(dir: string, tag: string, count: number, workers: number, pauseMs = 0): Writer {
  const args = [CHILD, dir, tag, String(count), String(workers), String(pauseMs)];
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const acked = new Set<string>();
  let stderr = "";
  let buffer = "";
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdout.on("data", (c: Buffer) => {
    buffer += c.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      if (line === "ready") onReady();
      else if (line.startsWith("ack ")) acked.add(line.slice(4));
    }
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, stderr })),
  );
  cleanups.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { child, ready, acked, exit };
}

describe("audit log: several writer processes on one file", () => {
  it("two logs on one file take turns: each continues the other's chain and checkpoints the whole tree", async () => {
    const t = tempDir("two-handles");
    cleanups.push(t.cleanup);
    const config = auditConfig({ checkpoint: { everyRecords: 7 } });
    const a = await openAuditLog({ config, dir: t.dir, logger: testLogger });
    cleanups.push(() => a.close());
    const b = await openAuditLog({ config, dir: t.dir, logger: testLogger });
    cleanups.push(() => b.close());

    await a.append(intent({ callId: "a-0" }));
    await b.append(intent({ callId: "b-0" }));
    await a.append(intent({ callId: "a-1" }));
    // Concurrent bursts from both: each group commit re-reads the tail the other moved.
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).append(intent({ callId: `burst-${i}` }))),
    );
    expect(a.size()).toBe(63);
    expect(b.size()).toBe(63);
    for (let seq = 1; seq < 63; seq++) expect(a.record(seq)!.record.prev).toBe(a.record(seq - 1)!.hash);
    expect(a.record(1)!.record.event.callId).toBe("b-0");

    // A checkpoint from `a` covers what `b` wrote after a's last append.
    await b.append(intent({ callId: "b-last" }));
    const cp = await a.checkpoint();
    expect(cp.size).toBe(64);
    const opened = openCheckpoint(cp.note, a.trustedKeys().map(parseVerifierKey), a.origin);
    expect(opened.root.equals(cp.root)).toBe(true);

    const report = await b.verify();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(64);
    expect(report.unattested).toBe(0);
  });

  it("two processes appending at once: one consistent chain that verifies, with every acknowledged record", async () => {
    const t = tempDir("two-processes");
    cleanups.push(t.cleanup);
    const perWriter = 1_500;
    // Each loop pauses 1 ms after an append, so both processes keep committing through the whole run.
    const writers = [startWriter(t.dir, "p", perWriter, 16, 1), startWriter(t.dir, "q", perWriter, 16, 1)];
    // Both open the same fresh directory at once: one origin, one signing key, one schema.
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.child.stdin.write("go\n");
    const exits = await Promise.all(writers.map((w) => w.exit));
    for (const e of exits) expect(e, e.stderr).toMatchObject({ code: 0 });

    const acked = [...writers[0]!.acked, ...writers[1]!.acked];
    expect(acked).toHaveLength(2 * perWriter);
    const db = new Database(join(t.dir, "audit.db"), { readonly: true });
    const rows = db
      .prepare<[], { seq: number; call_id: string }>("SELECT seq, call_id FROM records ORDER BY seq")
      .all();
    const checkpointCount = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM checkpoints").get()!.n;
    db.close();
    const stored = new Set(rows.map((r) => r.call_id));
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);
    expect(rows).toHaveLength(2 * perWriter);
    // The two processes really interleaved: the writer changes many times along the chain.
    let switches = 0;
    for (let i = 1; i < rows.length; i++) if (rows[i]!.call_id[0] !== rows[i - 1]!.call_id[0]) switches++;
    expect(switches).toBeGreaterThan(10);
    expect(checkpointCount).toBeGreaterThan(2);

    const reader = openAuditReader({ config: auditConfig({ origin: "multi.test/audit" }), dir: t.dir });
    cleanups.push(() => reader.close());
    const report = await reader.verify();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(2 * perWriter);
    // Both closed with a final checkpoint: everything is signed.
    expect(report.unattested).toBe(0);
  }, 120_000);
});
