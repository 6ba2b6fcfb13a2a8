import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import { createCallPolicy } from "../../src/scopes/policy.js";
import { testLogger } from "../helpers/logger.js";
import { identity, manifestDir } from "./fixtures.js";
import { manyManifests, manyTools } from "./many-tools.js";

// Correctness at the 10,000-tool scale; the timing figures live in bench-visible-tools.ts.
describe("10,000 registered tools", () => {
  const tools = manyTools(10_000);
  const dir = manifestDir(manyManifests());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("filters and narrows the per-identity view", () => {
    const policy = createCallPolicy(loadScopeManifests(dir, tools), { logger: testLogger });
    const reader = identity("r", ["readers"]);
    const visible = policy.visibleTools(reader, tools);
    const conn = (t: (typeof tools)[number]) => Number(t.connector.slice(1));
    const expected = tools.filter(
      (t) => conn(t) < 50 && t.annotations.readOnlyHint && t.name !== "c0__op_100",
    );
    expect(visible.map((t) => t.name)).toEqual(expected.map((t) => t.name));
    expect(visible.some((t) => t.name === "c0__op_100")).toBe(false);
    const both = identity("w", ["readers", "writers"]);
    const all = policy.visibleTools(both, tools);
    // c0__op_0, c7__op_7 and c14__op_14 write, so only the writers manifest grants them.
    expect(all).toHaveLength(expected.length + 3);
    const tool = tools.find((t) => t.name === "c3__op_3")!;
    expect(policy.visibleSchema(identity("w2", ["writers"]), tool).properties?.mode).toEqual({
      type: "string",
      enum: ["a"],
    });
    expect(policy.visibleSchema(both, tool)).toBe(tool.inputSchema);
  });
});
