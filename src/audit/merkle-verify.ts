import { EMPTY_ROOT, HASH_SIZE, nodeHash } from "./hash.js";

/**
 * RFC 6962 / RFC 9162 proof verification, plus the subtree proofs of the Merkle Tree Certificates
 * draft. Pure functions over hashes: this is the code an offline verifier trusts, so it depends on
 * nothing but node:crypto and refuses every malformed input instead of normalising it.
 *
 * Sizes and indices are unsigned 64-bit in the specs; they are handled as bigint here so that no
 * bit operation silently wraps at 2^32, and a JavaScript number that is not a safe integer is refused.
 */

export class ProofError extends Error {
  override readonly name = "ProofError";
}

export type Size = number | bigint;

function u64(value: Size, what: string): bigint {
  if (typeof value === "bigint") {
    if (value < 0n || value >= 1n << 64n) throw new ProofError(`${what} is outside the unsigned 64-bit range`);
    return value;
  }
  if (!Number.isSafeInteger(value) || value < 0) throw new ProofError(`${what} must be a non-negative safe integer`);
  return BigInt(value);
}

function bitLen(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

function onesCount(x: bigint): number {
  let n = 0;
  for (const c of x.toString(2)) if (c === "1") n++;
  return n;
}

function trailingZeros(x: bigint): number {
  if (x === 0n) return 64;
  let n = 0;
  while (((x >> BigInt(n)) & 1n) === 0n) n++;
  return n;
}

function checkHashes(proof: readonly Uint8Array[]): void {
  for (const [i, h] of proof.entries()) {
    if (h.length !== HASH_SIZE) throw new ProofError(`proof[${i}] has ${h.length} bytes, want ${HASH_SIZE}`);
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function match(computed: Uint8Array, expected: Uint8Array, what: string): void {
  if (!same(computed, expected)) throw new ProofError(`${what} does not match the proof`);
}

function chainInner(seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Uint8Array {
  let h = seed;
  proof.forEach((p, i) => {
    h = ((index >> BigInt(i)) & 1n) === 0n ? nodeHash(h, p) : nodeHash(p, h);
  });
  return h;
}

/** Like chainInner, but only left siblings count: the result is the earlier version of the subtree. */
function chainInnerRight(seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Uint8Array {
  let h = seed;
  proof.forEach((p, i) => {
    if (((index >> BigInt(i)) & 1n) === 1n) h = nodeHash(p, h);
  });
  return h;
}

function chainBorderRight(seed: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  let h = seed;
  for (const p of proof) h = nodeHash(p, h);
  return h;
}

/** Lengths of the inner part (below where the paths to `index` and `size-1` meet) and the border part. */
function decompInclProof(index: bigint, size: bigint): [number, number] {
  const inner = bitLen(index ^ (size - 1n));
  return [inner, onesCount(index >> BigInt(inner))];
}

/** The root an inclusion proof leads to. Requires index < size and a 32-byte leaf hash. */
export function rootFromInclusionProof(
  index: Size,
  size: Size,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  const i = u64(index, "leaf index");
  const n = u64(size, "tree size");
  if (i >= n) throw new ProofError(`leaf index ${i} is beyond tree size ${n}`);
  if (leaf.length !== HASH_SIZE) throw new ProofError(`leaf hash has ${leaf.length} bytes, want ${HASH_SIZE}`);
  const [inner, border] = decompInclProof(i, n);
  if (proof.length !== inner + border) {
    throw new ProofError(`inclusion proof has ${proof.length} hashes, want ${inner + border}`);
  }
  checkHashes(proof);
  return chainBorderRight(chainInner(leaf, proof.slice(0, inner), i), proof.slice(inner));
}

export function verifyInclusion(
  index: Size,
  size: Size,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  match(rootFromInclusionProof(index, size, leaf, proof), root, "root hash");
}

/** A subtree [start, end) is valid when it is non-empty and start is a multiple of bit_ceil(end - start). */
function checkSubtree(start: bigint, end: bigint): void {
  if (start >= end) throw new ProofError(`subtree [${start}, ${end}) is empty or reversed`);
  const width = 1n << BigInt(bitLen(end - start - 1n));
  if (start % width !== 0n) throw new ProofError(`subtree [${start}, ${end}) is not aligned`);
}

export function verifySubtreeInclusion(
  index: Size,
  start: Size,
  end: Size,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const i = u64(index, "leaf index");
  const s = u64(start, "subtree start");
  const e = u64(end, "subtree end");
  checkSubtree(s, e);
  if (i < s || i >= e) throw new ProofError(`leaf index ${i} is outside subtree [${s}, ${e})`);
  match(rootFromInclusionProof(i - s, e - s, leaf, proof), root, "subtree hash");
}

/**
 * The root of the tree of size2 a consistency proof leads to, after checking it against root1.
 * A proof from the empty tree is refused: it proves nothing (RFC 9162 §2.1.4).
 */
export function rootFromConsistencyProof(
  size1: Size,
  size2: Size,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
): Uint8Array {
  const m = u64(size1, "first tree size");
  const n = u64(size2, "second tree size");
  if (n < m) throw new ProofError(`second tree size ${n} is smaller than the first ${m}`);
  if (m === 0n) throw new ProofError("a consistency proof from the empty tree is meaningless");
  if (m === n) {
    if (proof.length > 0) throw new ProofError("equal tree sizes need an empty proof");
    return root1;
  }
  if (proof.length === 0) throw new ProofError("empty consistency proof");
  checkHashes(proof);
  return rootFromSubtree(0n, m, n, proof, root1);
}

export function verifyConsistency(
  size1: Size,
  size2: Size,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  match(rootFromConsistencyProof(size1, size2, proof, root1), root2, "second root hash");
}

/**
 * Subtree consistency (MTC draft): the subtree [start, end) with hash subRoot sits in the tree of
 * `size` leaves whose root is `root`. The empty subtree is consistent with every tree, provided it
 * is presented with the empty-tree hash and no proof.
 */
export function verifySubtreeConsistency(
  start: Size,
  end: Size,
  size: Size,
  proof: readonly Uint8Array[],
  subRoot: Uint8Array,
  root: Uint8Array,
): void {
  const s = u64(start, "subtree start");
  const e = u64(end, "subtree end");
  const n = u64(size, "tree size");
  if (s === e) {
    if (e > n) throw new ProofError(`subtree end ${e} is beyond tree size ${n}`);
    if (proof.length > 0) throw new ProofError("an empty subtree needs an empty proof");
    match(subRoot, EMPTY_ROOT, "empty subtree hash");
    return;
  }
  checkSubtree(s, e);
  if (n < e) throw new ProofError(`tree size ${n} is smaller than subtree end ${e}`);
  if (s === 0n && n === e) {
    if (proof.length > 0) throw new ProofError("a subtree that is the whole tree needs an empty proof");
    match(subRoot, root, "root hash");
    return;
  }
  if (proof.length === 0) throw new ProofError("empty subtree consistency proof");
  checkHashes(proof);
  match(rootFromSubtree(s, e, n, proof, subRoot), root, "root hash");
}

function rootFromSubtree(
  start: bigint,
  end: bigint,
  size: bigint,
  proof: readonly Uint8Array[],
  subRoot: Uint8Array,
): Uint8Array {
  if (end === size) {
    // The subtree is on the right border: one left sibling per level where its ancestor is a right child.
    const level = bitLen((end - 1n) ^ start);
    const want = onesCount(start >> BigInt(level));
    if (proof.length !== want) throw new ProofError(`subtree proof has ${proof.length} hashes, want ${want}`);
    return chainBorderRight(subRoot, proof);
  }
  const [forkLevel, border] = decompInclProof(end - 1n, size);
  // Height of the rightmost perfect subtree inside [start, end): the proof starts at that level.
  const shift = trailingZeros(end - start);
  const inner = forkLevel - shift;
  if (inner < 0) throw new ProofError("subtree proof shape is impossible for these sizes");
  // A perfect subtree's own hash is not in the proof: the verifier already knows it.
  const perfect = end - start === 1n << BigInt(shift);
  const seed = perfect ? subRoot : proof[0]!;
  const skip = perfect ? 0 : 1;
  if (proof.length !== skip + inner + border) {
    throw new ProofError(`consistency proof has ${proof.length} hashes, want ${skip + inner + border}`);
  }
  const rest = proof.slice(skip);
  const mask = (end - 1n) >> BigInt(shift);
  if (!perfect) {
    const h = bitLen((end - 1n) ^ start);
    const subInner = Math.min(h, forkLevel) - shift;
    const subBorder = Math.max(0, border - onesCount((end - 1n) >> BigInt(h)));
    if (subInner < 0) throw new ProofError("subtree proof shape is impossible for these sizes");
    const first = chainBorderRight(
      chainInnerRight(seed, rest.slice(0, subInner), mask),
      rest.slice(inner, inner + subBorder),
    );
    match(first, subRoot, "first root hash");
  }
  return chainBorderRight(chainInner(seed, rest.slice(0, inner), mask), rest.slice(inner));
}
