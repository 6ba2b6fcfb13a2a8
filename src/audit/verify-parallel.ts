import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { EMPTY_ROOT } from "./hash.js";
import { CompactRange } from "./merkle-tree.js";
import type { SegmentResult, SegmentTask } from "./verify-segment.js";

/**
 * Verifies the records and Merkle nodes of a log in aligned segments on worker threads (one per
 * core) and stitches the results: the chain across segment borders, the subtrees above the
 * segment level, and the root at every checkpoint. Returns the tree's root when everything
 * holds, or undefined when anything does not (or workers cannot run): the caller then runs the
 * sequential verifier, which classifies failures exactly. Only a clean log takes the fast path.
 */

export interface ParallelOptions {
  /** Worker threads (default: the cores available, at most 8). 0 turns the parallel path off. */
  readonly workers?: number;
  /** Segments hold 2^segmentLevel records (default 16: 65,536). */
  readonly segmentLevel?: number;
}

export const DEFAULT_SEGMENT_LEVEL = 16;

export function parallelWorkers(opts: ParallelOptions | undefined, size: number): number {
  const level = opts?.segmentLevel ?? DEFAULT_SEGMENT_LEVEL;
  const segments = Math.ceil(size / 2 ** level);
  const wanted = opts?.workers ?? Math.min(8, availableParallelism());
  // One segment, or one core, gains nothing over the sequential pass.
  return segments < 2 || wanted < 2 ? 0 : Math.min(wanted, segments);
}

/** The worker's entry: the compiled .js, or from TypeScript sources (development, tests) via tsx. */
function startWorker(file: string): Worker {
  const target = new URL(`./verify-worker.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);
  if (target.pathname.endsWith(".js")) return new Worker(target, { workerData: { file } });
  // Node 20 does not carry --import loaders into workers: register tsx inside the worker first.
  const tsxDir = dirname(createRequire(import.meta.url).resolve("tsx/package.json"));
  const api = pathToFileURL(join(tsxDir, "dist/esm/api/index.mjs")).href;
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(target.href)}); });`;
  return new Worker(code, { eval: true, workerData: { file } });
}

interface Checkpoint {
  readonly size: number;
  readonly root: Buffer;
}

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export async function verifyParallel(
  file: string,
  size: number,
  checkpoints: readonly Checkpoint[],
  workers: number,
  opts: { segmentLevel?: number; onProgress?: (verified: number, total: number) => void },
): Promise<Buffer | undefined> {
  const level = opts.segmentLevel ?? DEFAULT_SEGMENT_LEVEL;
  const width = 2 ** level;
  if (checkpoints.some((c) => c.size === 0 && !c.root.equals(EMPTY_ROOT))) return undefined;
  const tasks: SegmentTask[] = [];
  for (let from = 0; from < size; from += width) {
    const to = Math.min(size, from + width);
    tasks.push({
      from,
      to,
      topLevel: level,
      checkpointSizes: checkpoints.filter((c) => c.size > from && c.size <= to).map((c) => c.size),
    });
  }

  const pool: Worker[] = [];
  const results = new Map<number, SegmentResult>();
  let next = 0;
  let stitched = 0;
  let failed = false;
  const upper = new CompactRange();
  let prevHash: Buffer | undefined;
  let root: Buffer | undefined;

  /** Stitches finished segments in order; false on the first inconsistency. */
  const stitch = (): boolean => {
    for (let r = results.get(stitched); r !== undefined; r = results.get(stitched)) {
      results.delete(stitched);
      const task = tasks[stitched]!;
      if (!r.ok) return false;
      if (r.startPrev !== (prevHash ? prevHash.toString("hex") : "0".repeat(64))) return false;
      const prefix = upper.frontier();
      for (const cp of r.checkpoints) {
        const want = checkpoints.filter((c) => c.size === cp.size);
        const got = new CompactRange(cp.size, [...prefix, ...cp.frontier.map(buf)]).root();
        if (want.some((c) => !c.root.equals(got))) return false;
      }
      if (task.to - task.from === width) {
        const completed = upper.append(buf(r.frontier[0]!));
        if (completed.length !== r.upperNodes.length) return false;
        for (const [i, node] of completed.entries()) {
          const stored = r.upperNodes[i]!;
          if (stored.level !== level + node.level || !node.hash.equals(stored.hash)) return false;
        }
      } else {
        if (r.upperNodes.length > 0) return false;
        root = new CompactRange(size, [...prefix, ...r.frontier.map(buf)]).root();
      }
      prevHash = buf(r.lastHash);
      stitched++;
      opts.onProgress?.(task.to, size);
    }
    return true;
  };

  try {
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        failed ||= stitched < tasks.length;
        resolve();
      };
      const feed = (w: Worker): void => {
        if (failed || next >= tasks.length) {
          w.postMessage(null);
          return;
        }
        w.postMessage(tasks[next++]);
      };
      let alive = 0;
      for (let i = 0; i < workers; i++) {
        const w = startWorker(file);
        pool.push(w);
        alive++;
        w.on("message", (r: SegmentResult) => {
          results.set(Math.floor(r.from / width), r);
          if (!stitch()) failed = true;
          feed(w);
        });
        // A worker that cannot start or dies: the sequential pass takes over.
        w.on("error", () => {
          failed = true;
        });
        w.on("exit", () => {
          if (--alive === 0) finish();
        });
        feed(w);
      }
    });
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  if (failed) return undefined;
  return root ?? new CompactRange(size, upper.frontier()).root();
}
