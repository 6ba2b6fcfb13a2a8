/**
 * Benchmark (not a test): the filtered tools/list path with 10,000 registered tools.
 * Run: npx tsx test/scopes/bench-visible-tools.ts
 */
import { rmSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { loadScopeManifests } from "../../src/scopes/manifests.js";
import { createCallPolicy } from "../../src/scopes/policy.js";
import { identity, manifestDir } from "./fixtures.js";
import { manyManifests, manyTools } from "./many-tools.js";

const tools = manyTools(10_000);
const dir = manifestDir(manyManifests());
let t = performance.now();
const scopes = loadScopeManifests(dir, tools);
const loadMs = performance.now() - t;
const policy = createCallPolicy(scopes, { logger: pino({ level: "silent" }) });

function list(subject: string): number {
  const who = identity(subject, ["readers", "writers"]);
  const visible = policy.visibleTools(who, tools);
  for (const tool of visible) policy.visibleSchema(who, tool);
  return visible.length;
}

t = performance.now();
const n = list("first");
const coldMs = performance.now() - t;
const rounds = 50;
t = performance.now();
for (let i = 0; i < rounds; i++) list(`agent-${i}`);
const warmMs = (performance.now() - t) / rounds;
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify(
    {
      tools: tools.length,
      visible: n,
      loadManifestsMs: +loadMs.toFixed(1),
      firstListMs: +coldMs.toFixed(1),
      listMsPerNewIdentity: +warmMs.toFixed(2),
    },
    null,
    2,
  ),
);
