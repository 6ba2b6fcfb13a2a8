import type { Route } from "./http.js";
import type { Runtime } from "./runtime.js";

/** The scope-guarded HTTP surfaces beside /mcp. */
export function routesFor(_runtime: Runtime): Route[] {
  return [];
}
