import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Starts a worker thread running the module at `target`: compiled `.js` directly; a `.ts` source
 * (tests, tsx) with tsx registered inside the worker first, since Node 20 does not carry
 * `--import` loaders into workers. Its CommonJS hook, not its ESM one: that starts a loader
 * thread per worker (about 300 ms), this one a few milliseconds. So the worker's modules must
 * load as CommonJS: no top-level await, no ESM-only packages.
 */
export function startModuleWorker(target: URL, options: WorkerOptions = {}): Worker {
  if (!target.pathname.endsWith(".ts")) return new Worker(target, options);
  const tsxDir = dirname(createRequire(import.meta.url).resolve("tsx/package.json"));
  const api = join(tsxDir, "dist/cjs/api/index.cjs");
  const code = `require(${JSON.stringify(api)}).register(); require(${JSON.stringify(fileURLToPath(target))});`;
  return new Worker(code, { ...options, eval: true });
}
