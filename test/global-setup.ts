import { SERVICES, serviceUrl, type ServiceName } from "./helpers/services.js";

/** Fails fast, once, when CI lacks a service URL (instead of every suite failing on its own). */
export default function setup(): void {
  for (const name of Object.keys(SERVICES) as ServiceName[]) serviceUrl(name);
}
