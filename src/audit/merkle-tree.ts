import { EMPTY_ROOT, nodeHash } from "./hash.js";

/**
 * Hash of the perfect subtree at `level` (0 = leaves) and `index` (position among subtrees of that
 * level), i.e. of leaves [index·2^level, (index+1)·2^level). The store keeps every one of them, so
 * a proof costs O(log n) reads instead of rehashing the log.
 */
export interface NodeReader {
  node(level: number, index: number): Buffer;
}

/** A node the tree completed, keyed the way the store keeps it: by the last leaf it covers. */
export interface CompletedNode {
  /** Index of the last leaf under this node (the leaf whose append completed it). */
  readonly leaf: number;
  readonly level: number;
  readonly hash: Buffer;
}

/** The leaf a perfect subtree ends at: the key nodes are stored under. */
export function lastLeafOf(level: number, index: number): number {
  return (index + 1) * 2 ** level - 1;
}

/**
 * The right border of the tree: one perfect subtree hash per set bit of `size`, largest first.
 * Appending a leaf costs O(1) hashes amortised and yields the nodes it completes.
 * Sizes are JavaScript numbers: safe to 2^53 records, far beyond what one SQLite file holds.
 */
export class CompactRange {
  private stack: Buffer[];
  private count: number;

  constructor(size = 0, stack: Buffer[] = []) {
    this.count = size;
    this.stack = stack;
  }

  /** Rebuilds the border of a tree of `size` leaves from stored perfect subtree hashes. */
  static load(size: number, reader: NodeReader): CompactRange {
    const stack: Buffer[] = [];
    let offset = 0;
    for (let level = 52; level >= 0; level--) {
      const width = 2 ** level;
      if (Math.floor(size / width) % 2 === 1) {
        stack.push(reader.node(level, offset / width));
        offset += width;
      }
    }
    return new CompactRange(size, stack);
  }

  get size(): number {
    return this.count;
  }

  /** The perfect-subtree hashes of the border, largest first (a copy). */
  frontier(): Buffer[] {
    return [...this.stack];
  }

  clone(): CompactRange {
    return new CompactRange(this.count, [...this.stack]);
  }

  /** Adds the next leaf; returns the interior nodes it completed (lowest level first). */
  append(leaf: Buffer): CompletedNode[] {
    const completed: CompletedNode[] = [];
    const leafIndex = this.count;
    let hash = leaf;
    let index = leafIndex;
    let level = 0;
    while (index % 2 === 1) {
      hash = nodeHash(this.stack.pop()!, hash);
      index = (index - 1) / 2;
      level++;
      completed.push({ leaf: leafIndex, level, hash });
    }
    this.stack.push(hash);
    this.count++;
    return completed;
  }

  root(): Buffer {
    if (this.stack.length === 0) return EMPTY_ROOT;
    let hash = this.stack[this.stack.length - 1]!;
    for (let i = this.stack.length - 2; i >= 0; i--) hash = nodeHash(this.stack[i]!, hash);
    return hash;
  }
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[start:end]) from stored perfect subtrees (RFC 9162 §2.1.1). */
export function rangeHash(reader: NodeReader, start: number, end: number): Buffer {
  const n = end - start;
  if (n <= 0) return EMPTY_ROOT;
  const level = Math.log2(n);
  if (Number.isInteger(level) && start % n === 0) return reader.node(level, start / n);
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(rangeHash(reader, start, start + k), rangeHash(reader, start + k, end));
}

/** RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf to root. */
export function inclusionProof(reader: NodeReader, index: number, size: number): Buffer[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  }
  const proof: Buffer[] = [];
  const walk = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n <= 1) return;
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      walk(m, start, start + k);
      proof.push(rangeHash(reader, start + k, end));
    } else {
      walk(m - k, start + k, end);
      proof.push(rangeHash(reader, start, start + k));
    }
  };
  walk(index, 0, size);
  return proof;
}

/** RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2]). Requires 0 < size1 <= size2. */
export function consistencyProof(reader: NodeReader, size1: number, size2: number): Buffer[] {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 <= 0 || size1 > size2) {
    throw new RangeError(`no consistency proof from size ${size1} to ${size2}`);
  }
  const proof: Buffer[] = [];
  const sub = (m: number, start: number, end: number, whole: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!whole) proof.push(rangeHash(reader, start, end));
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      sub(m, start, start + k, whole);
      proof.push(rangeHash(reader, start + k, end));
    } else {
      sub(m - k, start + k, end, false);
      proof.push(rangeHash(reader, start, start + k));
    }
  };
  sub(size1, 0, size2, true);
  return proof;
}
