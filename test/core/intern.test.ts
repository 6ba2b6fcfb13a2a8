import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { internStrings } from "../../src/core/intern.js";

/** V8's gc(), reachable without starting node with --expose-gc. */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("internStrings", () => {
  it("keeps every value and the shape of the tree", () => {
    const tree = {
      name: "shop__getItem",
      inputSchema: {
        type: "object",
        properties: { id: { type: "string" }, tags: { type: "array", items: { type: "string" } } },
      },
      list: ["a", "b", ["a", { deep: "b" }]],
      n: 1,
      flag: true,
      nothing: null,
    };
    const copy = structuredClone(tree);
    expect(internStrings(copy)).toBe(copy);
    expect(copy).toEqual(tree);
  });

  it("leaves alone what is not a plain object or array, frozen objects, and stops on a cycle", () => {
    class Box {
      constructor(public label: string) {}
    }
    const frozen = Object.freeze({ type: "string" });
    const shared = { type: "string" };
    const cyclic: Record<string, unknown> = { type: "object" };
    cyclic.self = cyclic;
    const tree = {
      when: new Date(0),
      map: new Map([["k", "v"]]),
      box: new Box("x"),
      frozen,
      a: shared,
      b: shared,
      cyclic,
    };
    expect(() => internStrings(tree)).not.toThrow();
    expect(tree.box).toBeInstanceOf(Box);
    expect(tree.map.get("k")).toBe("v");
    expect(tree.a).toBe(tree.b);
    expect(internStrings("just a string")).toBe("just a string");
  });

  it("frees the copies a structured clone made: one string per distinct value is left", () => {
    const gc = collector();
    const value = "Recursive structure: same shape as its enclosing object.";
    const n = 100_000;
    // Built at run time so that no copy is a literal V8 already shares.
    const tools = structuredClone(Array.from({ length: n }, (_, i) => ({ description: `${value}`, i })));
    gc();
    const before = process.memoryUsage().heapUsed;
    internStrings(tools);
    gc();
    const freed = before - process.memoryUsage().heapUsed;
    // Each copy is a 56-character one-byte string: 16 bytes of header + 56, rounded up to 72+.
    expect(freed).toBeGreaterThan(n * 56);
    expect(tools.every((t) => t.description === value)).toBe(true);
  });
});
