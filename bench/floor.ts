import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { summarize, type LatencySummary } from "./stats.js";

/**
 * The disk's floor under an audited call: two SQLite commits in a row (WAL, synchronous=FULL),
 * as the gateway's intent and outcome records are, each with one small row. Measured in the same
 * directory the benchmark's deployments use, so it is the same disk and the same file system.
 * No gateway that holds its answer for both records (audit.outcomeBeforeAnswer) can answer an
 * audited call faster than this plus the direct call.
 *
 * With `idleMs`, the thread sleeps that long before each commit, as a gateway between sequential
 * calls does (waiting for the upstream, then for the next request); on a virtual machine a commit
 * after an idle spell costs more than one right after another (the vCPU has to be woken).
 *
 * With `commits` = 1 a sample is a single commit: what an answer waits for by default (the intent
 * record; the outcome record is committed after the answer is sent).
 */
export function durableCommitPairs(
  warmup: number,
  pairs: number,
  idleMs = 0,
  commits: 1 | 2 = 2,
): LatencySummary {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-floor-"));
  const db = new Database(join(dir, "floor.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE r (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)");
    const insert = db.prepare("INSERT INTO r (seq, body) VALUES (?, ?)");
    const body = Buffer.alloc(600, 0x61);
    const commit = db.transaction((seq: number) => insert.run(seq, body));
    let seq = 0;
    const samples: number[] = [];
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const idle = (): void => void (idleMs > 0 && Atomics.wait(sleeper, 0, 0, idleMs));
    for (let i = 0; i < warmup + pairs; i++) {
      idle();
      const t0 = performance.now();
      commit(seq++);
      const t1 = performance.now();
      let second = 0;
      if (commits === 2) {
        // As in a call: the process waits (for the upstream) between its two commits; only the commits count.
        idle();
        const t2 = performance.now();
        commit(seq++);
        second = performance.now() - t2;
      }
      if (i >= warmup) samples.push(t1 - t0 + second);
    }
    return summarize(samples);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
