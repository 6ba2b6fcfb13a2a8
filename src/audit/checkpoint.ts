import { HASH_SIZE, fromBase64, toBase64 } from "./hash.js";
import { NoteError, openNote, signNote, type NoteSigner, type NoteVerifier } from "./note.js";

/**
 * C2SP tlog-checkpoint body: origin, tree size, base64 root hash, then extension lines. We add one
 * extension line, `time <ISO-8601>`, so that a heartbeat over an unchanged tree still proves the
 * log was alive and unmodified at that moment.
 */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
  /** ISO-8601 time the checkpoint was issued. */
  readonly time: string;
}

export interface SignedCheckpoint extends Checkpoint {
  /** The complete signed note, exactly as signed. */
  readonly note: string;
}

export function checkpointText(cp: Checkpoint): string {
  return `${cp.origin}\n${cp.size}\n${toBase64(cp.root)}\ntime ${cp.time}\n`;
}

export function signCheckpoint(cp: Checkpoint, signers: readonly NoteSigner[]): SignedCheckpoint {
  return { ...cp, note: signNote(checkpointText(cp), signers) };
}

export function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw new NoteError("checkpoint must end with a newline");
  const [origin, sizeText, rootText, ...ext] = lines.slice(0, -1);
  if (!origin || !sizeText || !rootText) throw new NoteError("checkpoint needs origin, size and root lines");
  if (!/^(?:0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new NoteError(`checkpoint tree size "${sizeText.slice(0, 30)}" is not a decimal integer`);
  }
  const root = fromBase64(rootText);
  if (!root || root.length !== HASH_SIZE) throw new NoteError("checkpoint root is not a base64 SHA-256 hash");
  const timeLine = ext.find((l) => l.startsWith("time "));
  const time = timeLine?.slice(5) ?? "";
  return { origin, size: Number(sizeText), root, time };
}

/** Verifies a signed checkpoint note against trusted keys (and the expected origin, when given). */
export function openCheckpoint(
  note: string,
  trusted: readonly NoteVerifier[],
  origin?: string,
): SignedCheckpoint & { verifiedBy: readonly string[] } {
  const opened = openNote(note, trusted);
  const cp = parseCheckpointText(opened.text);
  if (origin !== undefined && cp.origin !== origin) {
    throw new NoteError(`checkpoint origin "${cp.origin}" is not this log's origin "${origin}"`);
  }
  return { ...cp, note, verifiedBy: opened.verifiedBy };
}

/** Reads the body of a checkpoint note without checking signatures (for display and ordering only). */
export function peekCheckpoint(note: string): Checkpoint {
  const split = note.lastIndexOf("\n\n");
  return parseCheckpointText(split < 0 ? note : note.slice(0, split + 1));
}
