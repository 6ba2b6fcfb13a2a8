import { afterAll, describe, expect, it } from "vitest";
import { TOOL_NAME_PATTERN } from "../../../src/core/index.js";
import { generateLargeSpec } from "./generate-large-spec.js";
import { makeConnector, tempDir, writeSpec } from "./helpers.js";

describe("rest connector: a 500-operation spec", () => {
  const files = tempDir("large");
  afterAll(() => files.cleanup());

  // Load time is measured by the benchmark (bench/), not asserted here.
  it("loads all 500 operations as distinct, valid tools", async () => {
    const file = writeSpec(files.dir, "large.json", generateLargeSpec(500));
    const c = await makeConnector({ name: "big", spec: file });
    const tools = c.tools();
    expect(tools).toHaveLength(500);
    expect(new Set(tools.map((t) => t.name)).size).toBe(500);
    for (const t of tools) expect(t.name).toMatch(TOOL_NAME_PATTERN);
    const get = tools.find((t) => t.name === "big__getResource7")!;
    expect(get.outputSchema!.type).toBe("object");
    expect(tools.find((t) => t.name === "big__listResource7")!.inputSchema.properties).toHaveProperty(
      "limit",
    );
    await c.close();
  });
});
