import { execFile, spawn } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import {
  loadRestSpec,
  prepareSpec,
  SPEC_CHILD_MIN_BYTES,
  specChildStats,
  startSpecChild,
  type SpecJob,
} from "../../../src/connectors/rest/spec-process.js";
import { generateLargeSpec } from "./generate-large-spec.js";
import { makeConnector, startServer, tempDir, writeSpec } from "./helpers.js";
import { rejection } from "../../helpers/errors.js";

const noReserved = (): SpecJob["reserved"] => ({ header: new Set(), query: new Set(), cookie: new Set() });

/** A pino logger writing into an array, to see the warnings a load logs. */
function capturingLogger() {
  const lines: { level: number; msg: string; err?: { message: string } }[] = [];
  const logger = pino({ level: "warn" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** Child processes this test process has running, by libuv handle (`ProcessWrap`). */
const runningChildren = () => process.getActiveResourcesInfo().filter((r) => r === "ProcessWrap").length;

describe("rest connector: large specs load in a child process", { timeout: 120_000 }, () => {
  const files = tempDir("spec-process");
  afterAll(() => files.cleanup());
  const large = writeSpec(files.dir, "large.json", generateLargeSpec(1_600));
  const job = (spec: string, extra: Partial<SpecJob["config"]> = {}): SpecJob => ({
    config: { name: "big", spec, baseUrl: "http://127.0.0.1:9/api", ...extra },
    baseDir: files.dir,
    reserved: { header: new Set(["x-request-id"]), query: new Set(), cookie: new Set() },
  });

  it("loads a spec above the threshold in a child process, with the same tools as in-process", async () => {
    expect(statSync(large).size).toBeGreaterThan(SPEC_CHILD_MIN_BYTES);
    const runs = specChildStats.runs;
    const c = await makeConnector({ name: "big", spec: large, baseUrl: "http://127.0.0.1:9/api" });
    expect(specChildStats.runs).toBe(runs + 1);
    const inProcess = await prepareSpec({
      config: { name: "big", spec: large, baseUrl: "http://127.0.0.1:9/api" },
      baseDir: files.dir,
      reserved: noReserved(),
    });
    expect(c.tools()).toHaveLength(1_600);
    expect(c.tools()).toEqual(inProcess.tools.map((t) => t.definition));
    await c.close();

    // Everything the connector keeps per tool (bindings, body, response schema), not only definitions.
    const viaChild = await loadRestSpec(job(large), { logger: capturingLogger().logger });
    expect(viaChild.where).toBe("child");
    expect(viaChild.prepared).toEqual(await prepareSpec(job(large)));
    // Reserved names (a Set) reached the child: the auth-owned header is no tool argument.
    const list = viaChild.prepared.tools.find((t) => t.definition.name === "big__listResource7")!;
    expect(list.definition.inputSchema.properties).not.toHaveProperty("X-Request-Id");
  });

  it("loads small specs in-process", async () => {
    const small = writeSpec(files.dir, "small.json", generateLargeSpec(20));
    const loaded = await loadRestSpec(job(small), { logger: capturingLogger().logger });
    expect(loaded.where).toBe("in-process");
  });

  it("concurrent loads each come back from their own child", async () => {
    const runs = specChildStats.runs;
    const { logger } = capturingLogger();
    const [a, b] = await Promise.all([
      loadRestSpec(job(large), { logger }),
      loadRestSpec(job(large, { name: "big2" }), { logger }),
    ]);
    expect([a.where, b.where]).toEqual(["child", "child"]);
    expect(specChildStats.runs).toBe(runs + 2);
    expect(a.prepared.tools[0]!.definition.name).toMatch(/^big__/);
    expect(b.prepared.tools[0]!.definition.name).toMatch(/^big2__/);
  });

  it("leaves no child process and no reply file behind once a load has resolved", async () => {
    const before = runningChildren();
    // The reply file's directory is made under os.tmpdir(), which follows TMPDIR.
    const tmp = join(files.dir, "tmp");
    mkdirSync(tmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const loaded = await loadRestSpec(job(large), { logger: capturingLogger().logger });
      expect(loaded.where).toBe("child");
      // (A child started under tsx leaves tsx's cache there: not ours.)
      expect(readdirSync(tmp).filter((f) => f.startsWith("portcullis-"))).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(runningChildren()).toBe(before);
  });

  it("an invalid large spec fails with the same CONFIG_INVALID message through both paths", async () => {
    const doc = generateLargeSpec(1_600) as { paths: Record<string, Record<string, unknown>> };
    doc.paths["/resource3"]!.get = { operationId: "broken" }; // no `responses`
    const invalid = writeSpec(files.dir, "invalid.json", doc);
    const { logger, lines } = capturingLogger();
    const fallbacks = specChildStats.fallbacks;
    const viaChild = await rejection(loadRestSpec(job(invalid), { logger, useChild: true }));
    const inProcess = await rejection(loadRestSpec(job(invalid), { logger, useChild: false }));
    expect(viaChild.code).toBe("CONFIG_INVALID");
    expect(viaChild.message).toBe(inProcess.message);
    expect(viaChild.message).toContain("invalid OpenAPI spec");
    expect(viaChild.details).toEqual(inProcess.details);
    // The child's answer, not a fallback that happened to fail the same way.
    expect(specChildStats.fallbacks).toBe(fallbacks);
    expect(lines).toEqual([]);
    // And through the connector, as the gateway sees it.
    const viaConnector = await rejection(makeConnector({ name: "big", spec: invalid }));
    expect(viaConnector.message).toBe(inProcess.message);
  });

  it("override and selection errors come back from the child unchanged", async () => {
    const small = writeSpec(files.dir, "small2.json", generateLargeSpec(20));
    const { logger } = capturingLogger();
    for (const extra of [
      { tools: { nope: { description: "x" } } },
      { include: { tags: ["no-such-tag"] } },
      { baseUrl: "ftp://example.test/" },
    ]) {
      const viaChild = await rejection(loadRestSpec(job(small, extra), { logger, useChild: true }));
      const inProcess = await rejection(loadRestSpec(job(small, extra), { logger, useChild: false }));
      expect(viaChild.code).toBe("CONFIG_INVALID");
      expect(viaChild.message).toBe(inProcess.message);
    }
  });

  it("falls back to loading in-process with a warning when the child cannot start", async () => {
    const { logger, lines } = capturingLogger();
    const fallbacks = specChildStats.fallbacks;
    const loaded = await loadRestSpec(job(large), {
      logger,
      startChild: () => {
        throw new Error("no processes here");
      },
    });
    expect(loaded.where).toBe("in-process");
    expect(loaded.prepared.tools).toHaveLength(1_600);
    expect(specChildStats.fallbacks).toBe(fallbacks + 1);
    expect(lines.map((l) => l.msg)).toEqual(["rest spec child process failed; loading the spec in-process"]);
    expect(lines[0]!.err?.message).toBe("no processes here");
  });

  it("falls back to loading in-process when the child dies before replying, naming its exit and stderr", async () => {
    const { logger, lines } = capturingLogger();
    const before = runningChildren();
    const loaded = await loadRestSpec(job(large), {
      logger,
      startChild: () =>
        spawn(process.execPath, ["-e", "process.stderr.write('out of luck\\n'); process.exit(3)"], {
          stdio: ["ignore", "ignore", "pipe", "ipc"],
        }),
    });
    expect(loaded.where).toBe("in-process");
    expect(loaded.prepared.tools).toHaveLength(1_600);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(40);
    expect(lines[0]!.err?.message).toBe(
      "spec child process exited with code 3 before replying; stderr: out of luck",
    );
    expect(runningChildren()).toBe(before);
  });

  it("a child in the middle of a load exits when the gateway goes away", async () => {
    // A spec server that never answers: the child's fetch alone would keep it alive for 15 s.
    let requested!: () => void;
    const fetching = new Promise<void>((resolve) => (requested = resolve));
    const server = await startServer(() => {
      requested();
      return new Promise(() => {});
    });
    try {
      const child = startSpecChild();
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.send({ job: job(`${server.url}/openapi.json`), replyFile: join(files.dir, "never-written") });
      await fetching;
      const started = performance.now();
      child.disconnect(); // what the gateway's exit, even by SIGKILL, does to the IPC channel
      expect(await exited).toBe(0);
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await server.close();
    }
  });

  // Under `serve --stdio` the gateway's stdout is the MCP stream: one stray byte corrupts it.
  it("writes nothing to the gateway's stdout", async () => {
    // Every process with an IPC channel (the spec child) writes a marker to its stdout at start.
    const preload = join(files.dir, "stdout-marker.cjs");
    writeFileSync(preload, 'if (process.channel) process.stdout.write("FROM-THE-SPEC-CHILD\\n");\n');
    const small = writeSpec(files.dir, "small3.json", generateLargeSpec(20));
    const moduleUrl = new URL("../../../src/connectors/rest/spec-process.ts", import.meta.url).href;
    const script = `
      import { pino } from "pino";
      import { loadRestSpec } from ${JSON.stringify(moduleUrl)};
      const job = {
        config: { name: "s", spec: ${JSON.stringify(small)}, baseUrl: "http://127.0.0.1:9/api" },
        baseDir: ${JSON.stringify(files.dir)},
        reserved: { header: new Set(), query: new Set(), cookie: new Set() },
      };
      const loaded = await loadRestSpec(job, { logger: pino({ level: "warn" }, pino.destination(2)), useChild: true });
      process.stdout.write(\`\${loaded.where} \${loaded.prepared.tools.length}\\n\`);
    `;
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", tsx, "--input-type=module", "-e", script],
      { env: { ...process.env, NODE_OPTIONS: `--require ${preload}` } },
    );
    expect(stderr).not.toContain("rest spec child process failed");
    expect(stdout).toBe("child 20\n");
  });
});
