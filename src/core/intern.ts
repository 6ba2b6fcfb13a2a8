/** Deeper than any JSON Schema or tool description the gateway builds; a cycle stops here. */
const MAX_DEPTH = 256;

/**
 * Replaces, in place, every string held by a tree of plain objects and arrays with one shared
 * copy per distinct value, and returns the tree.
 *
 * Data that crossed a thread or a process boundary (structured clone, v8 serialisation) holds a
 * separate heap string for every occurrence of a value: the tools of two 5,000-operation specs
 * arrived with 122,000 copies of "string" and 80,000 of "object", 11 MB of a 67 MB heap.
 * Interning them when the tools arrive keeps one each. Property names need nothing: V8 already
 * shares those.
 *
 * No set of visited objects is kept (for 10,000 tools it would cost more memory, for a moment,
 * than the strings save): a subtree shared by several parents is walked once per parent, as
 * serialising it would, and descent stops at MAX_DEPTH. Objects other than plain objects and
 * arrays (Map, Date, class instances) and frozen ones are left alone.
 */
export function internStrings<T>(root: T, table: Map<string, string> = new Map()): T {
  const intern = (value: string): string => {
    const known = table.get(value);
    if (known !== undefined) return known;
    table.set(value, value);
    return value;
  };
  const walk = (node: object, depth: number): void => {
    if (depth > MAX_DEPTH || !isTree(node)) return;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const v: unknown = node[i];
        if (typeof v === "string") node[i] = intern(v);
        else if (v !== null && typeof v === "object") walk(v, depth + 1);
      }
      return;
    }
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const v = record[key];
      if (typeof v === "string") record[key] = intern(v);
      else if (v !== null && typeof v === "object") walk(v, depth + 1);
    }
  };
  if (typeof root === "string") return intern(root) as T;
  if (root !== null && typeof root === "object") walk(root, 0);
  return root;
}

function isTree(value: object): boolean {
  if (Object.isFrozen(value)) return false;
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
