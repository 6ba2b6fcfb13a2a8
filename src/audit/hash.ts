import { createHash, hash } from "node:crypto";

/** SHA-256 output size; every hash in the log (leaf, node, root, prev) has this length. */
export const HASH_SIZE = 32;

const NODE_PREFIX = Buffer.from([0x01]);

/** Root of the empty tree: SHA-256 of nothing (RFC 6962 §2.1). */
export const EMPTY_ROOT: Buffer = createHash("sha256").digest();

/** The all-zero hash a first record names as its predecessor. */
export const GENESIS_PREV = "0".repeat(HASH_SIZE * 2);

export function sha256(data: Uint8Array | string): Buffer {
  return createHash("sha256").update(data).digest();
}

// One-shot hashing over a reused buffer: verification hashes every record and node, and a Hash
// object per call costs more than the SHA-256 itself. Single-threaded, so sharing is safe.
let scratch = Buffer.alloc(4096);
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = 0x01;

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ record bytes). Also the record's hash in the `prev` chain. */
export function leafHash(record: Uint8Array | string): Buffer {
  const bytes = typeof record === "string" ? Buffer.from(record, "utf8") : record;
  if (bytes.length + 1 > scratch.length) scratch = Buffer.alloc(Math.max(bytes.length + 1, scratch.length * 2));
  scratch[0] = 0x00;
  scratch.set(bytes, 1);
  return hash("sha256", scratch.subarray(0, bytes.length + 1), "buffer");
}

/** RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
  }
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return hash("sha256", nodeScratch, "buffer");
}

/**
 * nodeHash over hashes held as 32-character latin1 strings (one character per byte). The fast
 * verification path keeps every hash that way: a string result costs far less than a Buffer, and
 * it hashes every record and node of the log.
 */
export function nodeHashLatin1(left: string, right: string): string {
  for (let i = 0; i < HASH_SIZE; i++) {
    nodeScratch[1 + i] = left.charCodeAt(i);
    nodeScratch[1 + HASH_SIZE + i] = right.charCodeAt(i);
  }
  return hash("sha256", nodeScratch, "binary");
}

export function toBase64(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("base64");
}

/** Strict base64 (standard alphabet, padded): proofs from untrusted files must not be "repaired". */
export function fromBase64(text: string): Buffer | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  return Buffer.from(text, "base64");
}

export function fromHex(text: string): Buffer | undefined {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) return undefined;
  return Buffer.from(text, "hex");
}
