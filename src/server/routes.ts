import { createAdminRoutes } from "./admin.js";
import type { Route } from "./http.js";
import type { Runtime } from "./runtime.js";

/**
 * The scope-guarded HTTP surfaces beside /mcp. Order matters: the first matching prefix wins, so
 * /admin/approvals (approver scope) comes before /admin (admin scope).
 */
export function routesFor(runtime: Runtime): Route[] {
  return [
    ...runtime.governance.routes,
    { prefix: "/admin", scope: runtime.governance.roles.admin, handler: createAdminRoutes(runtime) },
  ];
}
