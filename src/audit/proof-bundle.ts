import { z } from "zod";
import { openCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import { fromBase64, leafHash, toBase64 } from "./hash.js";
import { ProofError, verifyConsistency, verifyInclusion } from "./merkle-verify.js";
import type { NoteVerifier } from "./note.js";
import { parseRecord, type RecordEnvelope } from "./record.js";

/**
 * Self-contained proofs an auditor checks offline with nothing but the log's public key:
 * the record's exact bytes, its inclusion path, and the signed checkpoint the path leads to.
 */

export const INCLUSION_FORMAT = "portcullis-audit-inclusion/v1";
export const CONSISTENCY_FORMAT = "portcullis-audit-consistency/v1";

export interface InclusionBundle {
  readonly format: typeof INCLUSION_FORMAT;
  readonly seq: number;
  readonly treeSize: number;
  /** The record's canonical JSON, exactly as stored and hashed. */
  readonly record: string;
  readonly leafHash: string;
  readonly proof: readonly string[];
  /** The signed checkpoint note (C2SP) for treeSize. */
  readonly checkpoint: string;
}

export interface ConsistencyBundle {
  readonly format: typeof CONSISTENCY_FORMAT;
  readonly from: number;
  readonly to: number;
  readonly fromRoot: string;
  readonly toRoot: string;
  readonly proof: readonly string[];
  /** Signed checkpoint for `to`, when the log has one at exactly that size. */
  readonly checkpoint?: string;
}

const b64Hash = z.string().max(64);

const inclusionSchema = z
  .object({
    format: z.literal(INCLUSION_FORMAT),
    seq: z.number().int().min(0),
    treeSize: z.number().int().min(1),
    record: z.string().max(16 * 1024 * 1024),
    leafHash: b64Hash,
    proof: z.array(b64Hash).max(64),
    checkpoint: z.string().max(1_000_000),
  })
  .strict();

export function makeInclusionBundle(
  seq: number,
  record: Buffer,
  proof: readonly Buffer[],
  checkpoint: SignedCheckpoint,
): InclusionBundle {
  return {
    format: INCLUSION_FORMAT,
    seq,
    treeSize: checkpoint.size,
    record: record.toString("utf8"),
    leafHash: toBase64(leafHash(record)),
    proof: proof.map(toBase64),
    checkpoint: checkpoint.note,
  };
}

export interface VerifiedInclusion {
  readonly seq: number;
  readonly treeSize: number;
  readonly origin: string;
  readonly checkpointTime: string;
  readonly signedBy: readonly string[];
  readonly record: RecordEnvelope;
}

function decodeProof(proof: readonly string[]): Buffer[] {
  return proof.map((p, i) => {
    const h = fromBase64(p);
    if (!h) throw new ProofError(`proof[${i}] is not base64`);
    return h;
  });
}

/**
 * Checks an inclusion bundle: checkpoint signature (trusted keys), record hash, inclusion path,
 * and that the record names the same sequence number. Throws ProofError / NoteError.
 */
export function verifyInclusionBundle(
  input: unknown,
  trusted: readonly NoteVerifier[],
  origin?: string,
): VerifiedInclusion {
  const parsed = inclusionSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProofError(`not a ${INCLUSION_FORMAT} bundle: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim());
  }
  const b = parsed.data;
  const cp = openCheckpoint(b.checkpoint, trusted, origin);
  if (cp.size !== b.treeSize) throw new ProofError(`bundle tree size ${b.treeSize} is not the checkpoint's ${cp.size}`);
  const bytes = Buffer.from(b.record, "utf8");
  const leaf = leafHash(bytes);
  if (toBase64(leaf) !== b.leafHash) throw new ProofError("the record does not hash to the bundle's leaf hash");
  verifyInclusion(b.seq, cp.size, leaf, decodeProof(b.proof), cp.root);
  const record = parseRecord(b.record);
  if (record.seq !== b.seq) throw new ProofError(`the record says seq ${record.seq}, the bundle ${b.seq}`);
  return { seq: b.seq, treeSize: cp.size, origin: cp.origin, checkpointTime: cp.time, signedBy: cp.verifiedBy, record };
}

export function verifyConsistencyBundle(b: ConsistencyBundle): void {
  const from = fromBase64(b.fromRoot);
  const to = fromBase64(b.toRoot);
  if (!from || !to) throw new ProofError("roots are not base64");
  verifyConsistency(b.from, b.to, decodeProof(b.proof), from, to);
}
