/**
 * Writes the JSON Schemas of the config files from their zod schemas, for editor completion and
 * CI. `--check` fails (exit 1) when a committed schema is stale, naming the file to regenerate.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { gatewayConfigSchema } from "../src/config/schema.js";

const targets: { file: string; schema: z.ZodType; title: string }[] = [
  {
    file: "mcp.config.schema.json",
    schema: gatewayConfigSchema,
    title: "Portcullis gateway configuration (mcp.config.json)",
  },
];

function render(schema: z.ZodType, title: string): string {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });
  return `${JSON.stringify({ title, ...json }, null, 2)}\n`;
}

const check = process.argv.includes("--check");
let stale = 0;
for (const t of targets) {
  const text = render(t.schema, t.title);
  if (check) {
    let current = "";
    try {
      current = readFileSync(t.file, "utf8");
    } catch {
      current = "";
    }
    if (current !== text) {
      console.error(`${t.file} is stale: run "npm run schema" and commit the result`);
      stale++;
    }
  } else {
    writeFileSync(t.file, text);
    console.error(`wrote ${t.file}`);
  }
}
process.exit(stale > 0 ? 1 : 0);
