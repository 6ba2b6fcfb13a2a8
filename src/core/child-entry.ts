import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * How to fork the module `name` that sits beside the module at `from` (its `import.meta.url`): the
 * .ts source with tsx's loader under tsx (tests, dev), the .js file once built. The execArgv is
 * explicit either way, so the gateway's own flags (--inspect, --cpu-prof) are not handed down.
 */
export function childEntry(from: string, name: string): { path: string; execArgv: string[] } {
  const here = fileURLToPath(from);
  if (here.endsWith(".ts")) {
    const tsx = createRequire(from).resolve("tsx");
    return { path: join(dirname(here), `${name}.ts`), execArgv: ["--import", pathToFileURL(tsx).href] };
  }
  return { path: join(dirname(here), `${name}.js`), execArgv: [] };
}
