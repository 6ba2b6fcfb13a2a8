import { GENESIS_PREV } from "./hash.js";
import { CompactRange } from "./merkle-tree.js";
import type { SqliteAuditStore } from "./store.js";
import { checkRecord } from "./verify-record.js";

/**
 * Verification of one aligned segment of the log, [from, to) with from a multiple of
 * 2^topLevel and to - from <= 2^topLevel, so that every Merkle subtree below topLevel lies inside
 * one segment. Segments are checked independently (in worker threads, one per core) and stitched
 * together by the caller: the chain across segment borders, the subtrees above topLevel and the
 * checkpoint roots. Any irregularity only answers "not ok": the sequential verifier then runs
 * and classifies it exactly, so this path never has to.
 */

export interface SegmentTask {
  readonly from: number;
  readonly to: number;
  readonly topLevel: number;
  /** Checkpoint tree sizes s with from < s <= to whose root the caller will check. */
  readonly checkpointSizes: readonly number[];
}

export type SegmentResult =
  | {
      readonly ok: true;
      readonly from: number;
      /** The hash (hex) the first record names as its predecessor: the stored hash of record from-1. */
      readonly startPrev: string;
      /** Leaf hash of the segment's last record. */
      readonly lastHash: Uint8Array;
      /** Perfect-subtree hashes of [from, to), largest first. */
      readonly frontier: Uint8Array[];
      /** Frontier of [from, s) for each requested checkpoint size s. */
      readonly checkpoints: { size: number; frontier: Uint8Array[] }[];
      /** Stored nodes above topLevel that end at the segment's last leaf: the caller checks them. */
      readonly upperNodes: { level: number; hash: Uint8Array }[];
    }
  | { readonly ok: false; readonly from: number; readonly reason: string };

const CHUNK = 8_192;

export function verifySegment(store: SqliteAuditStore, task: SegmentTask): SegmentResult {
  const { from, to, topLevel } = task;
  const bad = (reason: string): SegmentResult => ({ ok: false, from, reason });
  let prevHex = GENESIS_PREV;
  if (from > 0) {
    // Stored, not recomputed: the segment before checks that this hash is its record's hash.
    const before = store.recordChunk(from - 1, from, 1)[0];
    if (!before || before[0] !== from - 1) return bad(`record ${from - 1} is missing`);
    prevHex = before[1].toString("hex");
  }
  const startPrev = prevHex;
  const range = new CompactRange();
  const cpSizes = [...task.checkpointSizes].sort((a, b) => a - b);
  let cpAt = 0;
  const checkpoints: { size: number; frontier: Uint8Array[] }[] = [];
  const upperNodes: { level: number; hash: Uint8Array }[] = [];
  let expected = from;
  let lastHash: Buffer | undefined;
  while (expected < to) {
    const rows = store.fullRecordChunk(expected, to, CHUNK);
    if (rows.length === 0) return bad(`records ${expected}..${to - 1} are missing`);
    const nodeRows = store.nodeChunk(rows[0]!.seq, rows[rows.length - 1]!.seq + 1);
    let nodeAt = 0;
    for (const row of rows) {
      if (row.seq !== expected) return bad(`record ${expected} is missing`);
      const problem = checkRecord(row, undefined, undefined, expected, prevHex);
      if (problem) return bad(problem.message);
      for (const node of range.append(row.hash)) {
        const stored = nodeRows[nodeAt++];
        if (!stored || stored[0] !== from + node.leaf || stored[1] !== node.level || !stored[2].equals(node.hash)) {
          return bad(`stored Merkle node (level ${node.level}) at record ${from + node.leaf} does not match`);
        }
      }
      if (expected === to - 1) {
        // Nodes above the segment end at its last leaf; only the caller can compute them.
        while (nodeAt < nodeRows.length && nodeRows[nodeAt]![0] === expected && nodeRows[nodeAt]![1] > topLevel) {
          const [, level, hash] = nodeRows[nodeAt++]!;
          upperNodes.push({ level, hash });
        }
      }
      prevHex = row.hash.toString("hex");
      lastHash = row.hash;
      expected++;
      while (cpAt < cpSizes.length && cpSizes[cpAt]! <= expected) {
        if (cpSizes[cpAt] === expected) checkpoints.push({ size: expected, frontier: range.frontier() });
        cpAt++;
      }
    }
    if (nodeAt !== nodeRows.length) return bad(`a Merkle node is stored for record ${nodeRows[nodeAt]![0]} that completes no subtree`);
  }
  if (!lastHash) return bad("empty segment");
  return { ok: true, from, startPrev, lastHash, frontier: range.frontier(), checkpoints, upperNodes };
}
