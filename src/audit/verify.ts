import { openCheckpoint, peekCheckpoint } from "./checkpoint.js";
import { GENESIS_PREV, toBase64 } from "./hash.js";
import { CompactRange, type CompletedNode } from "./merkle-tree.js";
import type { NoteVerifier } from "./note.js";
import type { FullRecordRow, SqliteAuditStore } from "./store.js";
import { checkRecord, envelopeOf } from "./verify-record.js";
import { parallelWorkers, verifyParallel, type ParallelOptions } from "./verify-parallel.js";

/**
 * Full verification: every record's bytes, hash, sequence number and predecessor; the index
 * columns; every stored Merkle node; every checkpoint's signature and root. Reports failures by
 * the first sequence number they affect, with a kind an auditor can act on.
 */

export type VerifyFailureKind = "modified" | "inserted" | "deleted" | "reordered" | "truncated" | "bad-signature";

export interface VerifyFailure {
  readonly kind: VerifyFailureKind;
  /** First sequence number affected. */
  readonly seq: number;
  /** Last sequence number affected, when the damage is known to span a range. */
  readonly toSeq?: number;
  readonly message: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** Records in the store (highest seq + 1). */
  readonly size: number;
  /** Records checked before stopping (== size when ok). */
  readonly verified: number;
  /** Root hash of the verified tree (base64), when ok. */
  readonly root?: string;
  readonly checkpointsChecked: number;
  /** Largest tree size attested by a valid checkpoint. */
  readonly attestedSize: number;
  /** Records newer than every valid checkpoint: intact so far, but not yet signed. */
  readonly unattested: number;
  readonly warnings: readonly string[];
  /** All failures found, first sequence number first. */
  readonly failures: readonly VerifyFailure[];
  readonly failure?: VerifyFailure;
  readonly elapsedMs: number;
}

export interface ExtraCheckpoint {
  /** Where it came from (file name, "checkpoints table"), for messages. */
  readonly source: string;
  readonly note: string;
}

export interface VerifyOptions {
  readonly origin: string;
  readonly trusted: readonly NoteVerifier[];
  /** Checkpoints from outside the store: the external directory, --trusted-checkpoint files. */
  readonly extraCheckpoints?: readonly ExtraCheckpoint[];
  readonly onProgress?: (verified: number, total: number) => void;
  readonly chunkSize?: number;
  /** The fast path's threads (a clean log verifies there, on every core; a damaged one sequentially). */
  readonly parallel?: ParallelOptions;
}

interface ValidCheckpoint {
  size: number;
  root: Buffer;
  source: string;
}

function firstLeafOf(node: CompletedNode): number {
  return node.leaf - 2 ** node.level + 1;
}

export async function verifyStore(store: SqliteAuditStore, opts: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now();
  const warnings: string[] = [];
  const failures: VerifyFailure[] = [];
  const size = store.size();

  const missingTriggers = store.missingTriggers();
  if (missingTriggers.length > 0) warnings.push(`append-only triggers missing: ${missingTriggers.join(", ")}`);

  // 1. Checkpoints: signatures first, then which ones the records must reproduce.
  const sources: ExtraCheckpoint[] = [
    ...store.checkpoints().map((c) => ({ source: `checkpoints table (id ${c.id})`, note: c.note })),
    ...(opts.extraCheckpoints ?? []),
  ];
  const valid: ValidCheckpoint[] = [];
  const forged: { size: number; source: string; reason: string }[] = [];
  for (const { source, note } of sources) {
    try {
      const cp = openCheckpoint(note, opts.trusted, opts.origin);
      valid.push({ size: cp.size, root: cp.root, source });
    } catch (err) {
      let claimed = 0;
      try {
        claimed = peekCheckpoint(note).size;
      } catch {
        // Unparseable: it attests nothing, so it counts from the start of the log.
      }
      forged.push({ size: claimed, source, reason: (err as Error).message });
    }
  }
  valid.sort((a, b) => a.size - b.size);
  // Records up to the largest validly signed size at or below a forged checkpoint are still attested.
  const goodUpTo = (n: number): number => valid.filter((v) => v.size <= n).reduce((m, v) => Math.max(m, v.size), 0);
  for (const f of forged) {
    const seq = Math.min(goodUpTo(f.size), size);
    failures.push({
      kind: "bad-signature",
      seq,
      ...(f.size - 1 > seq ? { toSeq: f.size - 1 } : {}),
      message: `checkpoint from ${f.source} (tree size ${f.size}) is not validly signed by a trusted key: ${f.reason}`,
    });
  }
  for (const v of valid) {
    if (v.size > size) {
      failures.push({
        kind: "truncated",
        seq: size,
        toSeq: v.size - 1,
        message: `the log has ${size} records but a checkpoint from ${v.source} attests ${v.size}: records ${size}..${v.size - 1} are gone`,
      });
      break;
    }
  }
  const maxNodeLeaf = store.maxNodeLeaf();
  if (maxNodeLeaf !== undefined && maxNodeLeaf >= size && !failures.some((f) => f.kind === "truncated")) {
    failures.push({
      kind: "truncated",
      seq: size,
      toSeq: maxNodeLeaf,
      message: `Merkle nodes exist for records up to ${maxNodeLeaf}, but the log ends at ${size - 1}: its tail was deleted`,
    });
  }

  // 2. Records, streamed in chunks.
  const chunkSize = opts.chunkSize ?? 20_000;
  const range = new CompactRange();
  let prevHex = GENESIS_PREV;
  let expected = 0;
  let cpIndex = 0;
  let lastMatched = 0;
  let streamFailure: VerifyFailure | undefined;
  let previousRow: FullRecordRow | undefined;
  const fail = (f: VerifyFailure): void => {
    streamFailure = f;
  };

  const checkCheckpoints = (): void => {
    while (cpIndex < valid.length && valid[cpIndex]!.size <= expected) {
      const cp = valid[cpIndex]!;
      if (cp.size === expected) {
        if (!range.root().equals(cp.root)) {
          fail({
            kind: "modified",
            seq: lastMatched,
            toSeq: cp.size - 1,
            message: `records ${lastMatched}..${cp.size - 1} do not reproduce the root signed in the checkpoint from ${cp.source} (rewritten with valid hashes?)`,
          });
          return;
        }
        lastMatched = cp.size;
      }
      cpIndex++;
    }
  };
  checkCheckpoints();

  let verifiedRoot: Buffer | undefined;
  const threads = parallelWorkers(opts.parallel, size);
  if (threads > 0 && !streamFailure) {
    verifiedRoot = await verifyParallel(
      store,
      size,
      valid.filter((v) => v.size <= size),
      threads,
      {
        ...(opts.parallel?.segmentLevel !== undefined ? { segmentLevel: opts.parallel.segmentLevel } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      },
    );
    // Clean: every record, node and checkpoint root checked. Otherwise the sequential pass finds what is wrong.
    if (verifiedRoot) expected = size;
  }

  outer: while (!verifiedRoot && !streamFailure && expected < size) {
    // One row more than we process, so that a swap across the chunk boundary is still seen as one.
    const rows = store.fullRecordChunk(expected, size, chunkSize + 1);
    if (rows.length === 0) break;
    const count = Math.min(rows.length, chunkSize);
    const nodeRows = store.nodeChunk(rows[0]!.seq, rows[count - 1]!.seq + 1);
    let nodeAt = 0;
    for (let i = 0; i < count; i++) {
      const row = rows[i]!;
      if (row.seq !== expected) {
        fail({ kind: "deleted", seq: expected, toSeq: row.seq - 1, message: `records ${expected}..${row.seq - 1} are missing` });
        break outer;
      }
      const problem = checkRecord(row, rows[i + 1], i > 0 ? rows[i - 1] : previousRow, expected, prevHex);
      if (problem) {
        fail(problem);
        break outer;
      }
      const completed = range.append(row.hash);
      for (const node of completed) {
        const stored = nodeRows[nodeAt++];
        if (!stored || stored[0] !== node.leaf || stored[1] !== node.level || !stored[2].equals(node.hash)) {
          // If the successor was chained to different bytes, the record itself was rewritten.
          const successor = envelopeOf(rows[i + 1]);
          if (successor && successor.seq === expected + 1 && successor.prev !== row.hash.toString("hex")) {
            fail({
              kind: "modified",
              seq: expected,
              message: `record ${expected} is not the record that record ${expected + 1} was chained to`,
            });
            break outer;
          }
          fail({
            kind: "modified",
            seq: firstLeafOf(node),
            toSeq: node.leaf,
            message: `stored Merkle node (level ${node.level}) over records ${firstLeafOf(node)}..${node.leaf} does not match them`,
          });
          break outer;
        }
      }
      prevHex = row.hash.toString("hex");
      previousRow = row;
      expected++;
      checkCheckpoints();
      if (streamFailure) break outer;
    }
    if (nodeAt !== nodeRows.length) {
      const extra = nodeRows[nodeAt]!;
      fail({
        kind: "inserted",
        seq: extra[0],
        message: `a Merkle node (level ${extra[1]}) is stored for record ${extra[0]} that completes no subtree`,
      });
    }
    opts.onProgress?.(expected, size);
    // Yield between chunks so that a verify inside a live gateway does not starve it.
    await new Promise<void>((r) => setImmediate(r));
  }
  if (streamFailure) failures.push(streamFailure);

  failures.sort((a, b) => a.seq - b.seq || (a.kind === "bad-signature" ? 1 : 0) - (b.kind === "bad-signature" ? 1 : 0));
  const attestedSize = valid.filter((v) => v.size <= size).reduce((m, v) => Math.max(m, v.size), 0);
  const ok = failures.length === 0;
  if (ok && valid.length === 0 && size > 0) warnings.push("no valid checkpoint: nothing in this log is signed yet");
  return {
    ok,
    size,
    verified: expected,
    ...(ok ? { root: toBase64(verifiedRoot ?? range.root()) } : {}),
    checkpointsChecked: sources.length,
    attestedSize,
    unattested: Math.max(0, expected - attestedSize),
    warnings,
    failures,
    ...(failures[0] ? { failure: failures[0] } : {}),
    elapsedMs: performance.now() - started,
  };
}

