import { statSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import {
  loadRestSpec,
  prepareSpec,
  SPEC_WORKER_MIN_BYTES,
  specWorkerStats,
  type SpecJob,
} from "../../../src/connectors/rest/spec-worker.js";
import { generateLargeSpec } from "./generate-large-spec.js";
import { makeConnector, tempDir, writeSpec } from "./helpers.js";
import { rejection } from "../../helpers/errors.js";

const noReserved = (): SpecJob["reserved"] => ({ header: new Set(), query: new Set(), cookie: new Set() });

/** A pino logger writing into an array, to see the warnings a load logs. */
function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "warn" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

describe("rest connector: large specs load in a worker thread", { timeout: 120_000 }, () => {
  const files = tempDir("spec-worker");
  afterAll(() => files.cleanup());
  const large = writeSpec(files.dir, "large.json", generateLargeSpec(1_600));
  const job = (spec: string, extra: Partial<SpecJob["config"]> = {}): SpecJob => ({
    config: { name: "big", spec, baseUrl: "http://127.0.0.1:9/api", ...extra },
    baseDir: files.dir,
    reserved: { header: new Set(["x-request-id"]), query: new Set(), cookie: new Set() },
  });

  it("loads a spec above the threshold through a worker, with the same tools as in-process", async () => {
    expect(statSync(large).size).toBeGreaterThan(SPEC_WORKER_MIN_BYTES);
    const runs = specWorkerStats.runs;
    const c = await makeConnector({ name: "big", spec: large, baseUrl: "http://127.0.0.1:9/api" });
    expect(specWorkerStats.runs).toBe(runs + 1);
    const inProcess = await prepareSpec({
      config: { name: "big", spec: large, baseUrl: "http://127.0.0.1:9/api" },
      baseDir: files.dir,
      reserved: noReserved(),
    });
    expect(c.tools()).toHaveLength(1_600);
    expect(c.tools()).toEqual(inProcess.tools.map((t) => t.definition));
    await c.close();

    // Everything the connector keeps per tool (bindings, body, response schema), not only definitions.
    const viaWorker = await loadRestSpec(job(large), { logger: capturingLogger().logger });
    expect(viaWorker.thread).toBe("worker");
    expect(viaWorker.prepared).toEqual(await prepareSpec(job(large)));
    // Reserved names reached the worker: the auth-owned header is no tool argument.
    const list = viaWorker.prepared.tools.find((t) => t.definition.name === "big__listResource7")!;
    expect(list.definition.inputSchema.properties).not.toHaveProperty("X-Request-Id");
  });

  it("loads small specs in-process", async () => {
    const small = writeSpec(files.dir, "small.json", generateLargeSpec(20));
    const loaded = await loadRestSpec(job(small), { logger: capturingLogger().logger });
    expect(loaded.thread).toBe("main");
  });

  it("concurrent loads each come back from their own worker", async () => {
    const runs = specWorkerStats.runs;
    const { logger } = capturingLogger();
    const [a, b] = await Promise.all([
      loadRestSpec(job(large), { logger }),
      loadRestSpec(job(large, { name: "big2" }), { logger }),
    ]);
    expect([a.thread, b.thread]).toEqual(["worker", "worker"]);
    expect(specWorkerStats.runs).toBe(runs + 2);
    expect(b.prepared.tools[0]!.definition.name).toMatch(/^big2__/);
  });

  it("an invalid large spec fails with the same CONFIG_INVALID message through both paths", async () => {
    const doc = generateLargeSpec(1_600) as { paths: Record<string, Record<string, unknown>> };
    doc.paths["/resource3"]!.get = { operationId: "broken" }; // no `responses`
    const invalid = writeSpec(files.dir, "invalid.json", doc);
    const { logger } = capturingLogger();
    const viaWorker = await rejection(loadRestSpec(job(invalid), { logger, useWorker: true }));
    const inProcess = await rejection(loadRestSpec(job(invalid), { logger, useWorker: false }));
    expect(viaWorker.code).toBe("CONFIG_INVALID");
    expect(viaWorker.message).toBe(inProcess.message);
    expect(viaWorker.message).toContain("invalid OpenAPI spec");
    expect(viaWorker.details).toEqual(inProcess.details);
    // And through the connector, as the gateway sees it.
    const viaConnector = await rejection(makeConnector({ name: "big", spec: invalid }));
    expect(viaConnector.message).toBe(inProcess.message);
  });

  it("override and selection errors come back from the worker unchanged", async () => {
    const small = writeSpec(files.dir, "small2.json", generateLargeSpec(20));
    const { logger } = capturingLogger();
    for (const extra of [
      { tools: { nope: { description: "x" } } },
      { include: { tags: ["no-such-tag"] } },
      { baseUrl: "ftp://example.test/" },
    ]) {
      const viaWorker = await rejection(loadRestSpec(job(small, extra), { logger, useWorker: true }));
      const inProcess = await rejection(loadRestSpec(job(small, extra), { logger, useWorker: false }));
      expect(viaWorker.code).toBe("CONFIG_INVALID");
      expect(viaWorker.message).toBe(inProcess.message);
    }
  });

  it("falls back to the main thread with a warning when the worker cannot start", async () => {
    const { logger, lines } = capturingLogger();
    const fallbacks = specWorkerStats.fallbacks;
    const loaded = await loadRestSpec(job(large), {
      logger,
      startWorker: () => {
        throw new Error("no threads here");
      },
    });
    expect(loaded.thread).toBe("main");
    expect(loaded.prepared.tools).toHaveLength(1_600);
    expect(specWorkerStats.fallbacks).toBe(fallbacks + 1);
    expect(lines.map((l) => l.msg)).toContain("rest spec worker failed; loading the spec in the main thread");
  });

  it("falls back to the main thread when the worker dies before replying", async () => {
    const { logger, lines } = capturingLogger();
    const loaded = await loadRestSpec(job(large), {
      logger,
      startWorker: () => new Worker("process.exit(3)", { eval: true }),
    });
    expect(loaded.thread).toBe("main");
    expect(loaded.prepared.tools).toHaveLength(1_600);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(40);
  });
});
