import { describe, expect, it } from "vitest";
import { DEFAULT_HEAP_GROWING_PERCENT, heapGrowthFlag } from "../../src/server/heap.js";

describe("heap growth tuning for serve", () => {
  it("sets V8's heap growth when the operator did not", () => {
    expect(heapGrowthFlag([], undefined)).toBe(`--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`);
    expect(heapGrowthFlag(["--enable-source-maps"], "--max-old-space-size=512")).toBe(
      `--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`,
    );
  });

  it("leaves an operator's own choice alone, on the command line or in NODE_OPTIONS, in either spelling", () => {
    expect(heapGrowthFlag(["--heap-growing-percent=100"], undefined)).toBeUndefined();
    expect(heapGrowthFlag([], "--max-old-space-size=512 --heap_growing_percent=0")).toBeUndefined();
    // A different flag that merely starts alike is not the operator's choice.
    expect(heapGrowthFlag(["--heap-growing-percentile=5"], undefined)).toBeDefined();
  });
});
