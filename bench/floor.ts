import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { summarize, type LatencySummary } from "./stats.js";

/**
 * The disk's floor under an audited call: two SQLite commits in a row (WAL, synchronous=FULL),
 * as the gateway's intent and outcome records are, each with one small row. Measured in the same
 * directory the benchmark's deployments use, so it is the same disk and the same file system.
 * No gateway can answer an audited call faster than this plus the direct call.
 */
export function durableCommitPairs(warmup: number, pairs: number): LatencySummary {
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
    for (let i = 0; i < warmup + pairs; i++) {
      const t = performance.now();
      commit(seq++);
      commit(seq++);
      if (i >= warmup) samples.push(performance.now() - t);
    }
    return summarize(samples);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
