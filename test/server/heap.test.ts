import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_HEAP_GROWING_PERCENT,
  DEFAULT_YOUNG_GENERATION_MB,
  heapGrowthFlag,
  youngGenerationCap,
} from "../../src/server/heap.js";

const HEAP_MODULE = join(dirname(fileURLToPath(import.meta.url)), "../../src/server/heap.ts");
const MiB = 1024 * 1024;

describe("heap growth tuning for serve", () => {
  it("sets V8's heap growth when the operator did not", () => {
    expect(heapGrowthFlag([], undefined)).toBe(`--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`);
    expect(heapGrowthFlag(["--enable-source-maps"], "--max-old-space-size=512")).toBe(
      `--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`,
    );
  });

  it("leaves an operator's own choice on node's command line alone, in either spelling", () => {
    expect(heapGrowthFlag(["--heap-growing-percent=100"], undefined)).toBeUndefined();
    expect(heapGrowthFlag(["--heap_growing_percent=0"], "--max-old-space-size=512")).toBeUndefined();
    // A different flag that merely starts alike is not the operator's choice.
    expect(heapGrowthFlag(["--heap-growing-percentile=5"], undefined)).toBeDefined();
  });
});

describe("young generation cap for serve", () => {
  it("caps the new space unless the operator sized it (NODE_OPTIONS takes only --max-semi-space-size)", () => {
    expect(youngGenerationCap([], undefined)).toBe(DEFAULT_YOUNG_GENERATION_MB);
    expect(youngGenerationCap(["--heap-growing-percent=30"], "--max-old-space-size=256")).toBe(
      DEFAULT_YOUNG_GENERATION_MB,
    );
    expect(youngGenerationCap(["--max-semi-space-size=32"], undefined)).toBeUndefined();
    expect(youngGenerationCap([], "--max-old-space-size=256 --max_semi_space_size=4")).toBeUndefined();
    expect(youngGenerationCap(["--min_semi_space_size=4"], undefined)).toBeUndefined();
    expect(youngGenerationCap(["--semi-space-growth-factor=4"], undefined)).toBeUndefined();
  });

  /**
   * A real Node process allocating as a busy server does (short tasks, a share of each task's
   * objects kept a while), with the cap installed or not; answers its new space's size in bytes
   * after the churn, and again after the cap was removed and the churn repeated.
   */
  async function newSpaceAfterChurn(capMb: number | undefined): Promise<{ during: number; after: number }> {
    const script = `
      import { capYoungGeneration, newSpaceBytes } from ${JSON.stringify(HEAP_MODULE)};
      const stop = ${capMb === undefined ? "() => {}" : `capYoungGeneration(${capMb})`};
      const churn = async () => {
        let kept = [];
        for (let turn = 0; turn < 400; turn++) {
          for (let i = 0; i < 20000; i++) {
            const o = { turn, i, text: "x".repeat(i % 64) };
            if (i % 3 === 0) kept.push(o);
          }
          if (kept.length > 200000) kept = [];
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await churn();
      const during = newSpaceBytes();
      stop();
      await churn();
      process.stdout.write(JSON.stringify({ during, after: newSpaceBytes() }));
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "--eval", script],
      { env: { ...process.env, NODE_OPTIONS: "" }, timeout: 60_000 },
    );
    return JSON.parse(stdout) as { during: number; after: number };
  }

  it("keeps a busy process's new space at the cap, where V8 alone grows it past, and lets go when stopped", async () => {
    const [capped, free] = await Promise.all([
      newSpaceAfterChurn(DEFAULT_YOUNG_GENERATION_MB),
      newSpaceAfterChurn(undefined),
    ]);
    // Without the cap the same churn takes V8 past it: the check below could fail.
    expect(free.during).toBeGreaterThan(DEFAULT_YOUNG_GENERATION_MB * MiB);
    expect(capped.during).toBeGreaterThan(0);
    expect(capped.during).toBeLessThanOrEqual(DEFAULT_YOUNG_GENERATION_MB * MiB);
    // Stopped, V8's own growth is back.
    expect(capped.after).toBeGreaterThan(DEFAULT_YOUNG_GENERATION_MB * MiB);
  }, 120_000);
});
