import { hash } from "node:crypto";
import { HASH_SIZE as IMPORTED_HASH_SIZE, nodeHashLatin1 as importedNodeHash } from "./hash.js";
import { recordMatches as importedRecordMatches } from "./record-scan.js";
import type { SqliteAuditStore } from "./store.js";
import { checkRecord } from "./verify-record.js";

// Local bindings for what the per-record loop uses: loaded from TypeScript sources in a worker
// (see verify-parallel.ts), every use of an imported name is a getter call.
const HASH_SIZE = IMPORTED_HASH_SIZE;
const nodeHashLatin1 = importedNodeHash;
const recordMatches = importedRecordMatches;

/**
 * Verification of one aligned segment of the log, [from, to) with from a multiple of
 * 2^topLevel and to - from <= 2^topLevel, so that every Merkle subtree below topLevel lies inside
 * one segment. Segments are checked independently (on the calling thread and worker threads) and
 * stitched together by the caller: the chain across segment borders, the subtrees above topLevel
 * and the checkpoint roots. Any irregularity only answers "not ok": the sequential verifier then
 * runs and classifies it exactly, so this path never has to.
 */

export interface SegmentTask {
  readonly from: number;
  readonly to: number;
  readonly topLevel: number;
  /** Checkpoint tree sizes s with from < s <= to whose root the caller will check. */
  readonly checkpointSizes: readonly number[];
}

/** Indexes into the counters the threads share: the next segment to take, and "stop" (something failed). */
export const NEXT_TASK = 0;
export const STOP = 1;

/** What a verification worker is started with (see verify-worker.ts). */
export interface WorkerInput {
  readonly file: string;
  readonly tasks: readonly SegmentTask[];
  /** An Int32Array over a SharedArrayBuffer: [NEXT_TASK, STOP]. */
  readonly shared: Int32Array;
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
      /** Records of unusual form that needed the exact check (see record-scan.ts). */
      readonly exactChecks: number;
    }
  | { readonly ok: false; readonly from: number; readonly reason: string };

/** What record 0 names as its predecessor: all zeros (GENESIS_PREV in hex). */
const GENESIS_HASH = "\0".repeat(HASH_SIZE);
/** Rows per query: small enough that they die young (8,192 measured about 10% slower, in GC). */
const CHUNK = 1_024;
/** Bytes per stored node in SqliteAuditStore.segmentNodes: leaf (8), level (1), hash (32). */
const NODE_ENTRY = 41;
const TWO_32 = 2 ** 32;

// Hashes are 32-character latin1 strings here (see nodeHashLatin1): cheaper than Buffers.
const bytesOf = (latin1: string): Uint8Array => new Uint8Array(Buffer.from(latin1, "latin1"));

/** True when bytes[at, at + 32) are the hash `latin1`. */
function sameHash(bytes: Uint8Array, at: number, latin1: string): boolean {
  for (let i = 0; i < HASH_SIZE; i++) if (bytes[at + i] !== latin1.charCodeAt(i)) return false;
  return true;
}

const upperHex = (n: number): number => (n < 10 ? 0x30 + n : 0x37 + n);

/** True when bytes[0, 64) are the hash `latin1` in hex, as SQLite's hex() writes it (upper case). */
function sameHexHash(bytes: Uint8Array, latin1: string): boolean {
  for (let i = 0; i < HASH_SIZE; i++) {
    const byte = latin1.charCodeAt(i);
    if (bytes[2 * i] !== upperHex(byte >> 4) || bytes[2 * i + 1] !== upperHex(byte & 15)) return false;
  }
  return true;
}

// One row's text as UTF-8, reused: writing it costs far less than allocating a Buffer per row.
let scratch = Buffer.alloc(1 << 16);

function nodeAt(entries: Buffer, at: number, leaf: number, level: number, hash: string): boolean {
  return (
    at + NODE_ENTRY <= entries.length &&
    entries.readUInt32BE(at) === Math.floor(leaf / TWO_32) &&
    entries.readUInt32BE(at + 4) === leaf >>> 0 &&
    entries[at + 8] === level &&
    sameHash(entries, at + 9, hash)
  );
}

export function verifySegment(store: SqliteAuditStore, task: SegmentTask): SegmentResult {
  const { from, to, topLevel } = task;
  const bad = (reason: string): SegmentResult => ({ ok: false, from, reason });
  let prev = GENESIS_HASH;
  if (from > 0) {
    // Stored, not recomputed: the segment before checks that this hash is its record's hash.
    const before = store.recordChunk(from - 1, from, 1)[0];
    if (!before || before[0] !== from - 1) return bad(`record ${from - 1} is missing`);
    if (!Buffer.isBuffer(before[1]) || before[1].length !== HASH_SIZE) return bad(`record ${from - 1} has no valid hash`);
    prev = before[1].toString("latin1");
  }
  const startPrev = Buffer.from(prev, "latin1").toString("hex");
  // The right border of the segment's tree, largest subtree first (as in CompactRange).
  const stack: string[] = [];
  const cpSizes = [...task.checkpointSizes].sort((a, b) => a - b);
  let cpAt = 0;
  const checkpoints: { size: number; frontier: Uint8Array[] }[] = [];
  const upperNodes: { level: number; hash: Uint8Array }[] = [];
  let expected = from;
  let exactChecks = 0;
  while (expected < to) {
    const chunkEnd = Math.min(to, expected + CHUNK);
    let rows: [number, string | null][];
    try {
      rows = store.segmentRecords(expected, chunkEnd, CHUNK);
    } catch (err) {
      return bad(`records ${expected}..${chunkEnd - 1} cannot be read: ${(err as Error).message}`);
    }
    if (rows.length !== chunkEnd - expected) return bad(`records ${expected}..${chunkEnd - 1} are incomplete`);
    const nodes = store.segmentNodes(expected, chunkEnd);
    const entries = nodes.entries ?? Buffer.alloc(0);
    if (entries.length !== nodes.count * NODE_ENTRY) return bad(`Merkle nodes of records ${expected}..${chunkEnd - 1} cannot be read`);
    let at = 0;
    for (const [seq, row] of rows) {
      if (seq !== expected) return bad(`record ${expected} is missing`);
      let leaf: string | undefined;
      if (row !== null) {
        // Layout: stored hash (64 hex digits), the query columns as JSON, NUL, the record's text,
        // encoded as UTF-8 again. Its hash equals the stored one only if that gives back exactly
        // the stored bytes, i.e. the text is what the exact check would parse.
        if (scratch.length < 3 * row.length) scratch = Buffer.alloc(3 * row.length);
        const length = scratch.write(row, 0, "utf8");
        const zero = scratch.indexOf(0, 2 * HASH_SIZE);
        if (zero > 0 && zero < length) {
          leaf = hash("sha256", scratch.subarray(zero, length), "binary");
          if (!sameHexHash(scratch, leaf) || !recordMatches(scratch, 2 * HASH_SIZE, zero, zero + 1, length, expected, prev)) {
            leaf = undefined;
          }
        }
      }
      if (leaf === undefined) {
        // Not the common shape: the exact check decides.
        exactChecks++;
        const full = store.record(expected);
        if (!full) return bad(`record ${expected} is missing`);
        const problem = checkRecord(full, undefined, undefined, expected, Buffer.from(prev, "latin1").toString("hex"));
        if (problem) return bad(problem.message);
        leaf = full.hash.toString("latin1");
      }
      let hashed = leaf;
      let index = expected - from;
      let level = 0;
      while (index % 2 === 1) {
        hashed = nodeHashLatin1(stack.pop()!, hashed);
        index = (index - 1) / 2;
        level++;
        if (!nodeAt(entries, at, expected, level, hashed)) {
          return bad(`stored Merkle node (level ${level}) at record ${expected} does not match`);
        }
        at += NODE_ENTRY;
      }
      stack.push(hashed);
      if (expected === to - 1) {
        // Nodes above the segment end at its last leaf; only the caller can compute them.
        while (at + NODE_ENTRY <= entries.length && entries[at + 8]! > topLevel) {
          const leafOf = entries.readUInt32BE(at) * TWO_32 + entries.readUInt32BE(at + 4);
          if (leafOf !== expected) break;
          upperNodes.push({ level: entries[at + 8]!, hash: new Uint8Array(entries.subarray(at + 9, at + NODE_ENTRY)) });
          at += NODE_ENTRY;
        }
      }
      prev = leaf;
      expected++;
      while (cpAt < cpSizes.length && cpSizes[cpAt]! <= expected) {
        if (cpSizes[cpAt] === expected) checkpoints.push({ size: expected, frontier: stack.map(bytesOf) });
        cpAt++;
      }
    }
    if (at !== entries.length) {
      const leafOf = entries.readUInt32BE(at) * TWO_32 + entries.readUInt32BE(at + 4);
      return bad(`a Merkle node is stored for record ${leafOf} that completes no subtree`);
    }
  }
  if (expected === from) return bad("empty segment");
  return { ok: true, from, startPrev, lastHash: bytesOf(prev), frontier: stack.map(bytesOf), checkpoints, upperNodes, exactChecks };
}
