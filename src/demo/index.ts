import type { Logger } from "pino";

export interface DemoBackend {
  close(): Promise<void>;
}

export interface DemoOptions {
  repoRoot: string;
  logger: Logger;
}

type DemoModule = { start(opts: DemoOptions): Promise<DemoBackend> };

/**
 * The sample enterprise behind `npm start`: each backend is loaded only when the demo is on, so
 * a production gateway never imports demo code.
 */
const backends: Record<string, () => Promise<DemoModule>> = {
  customers: () => import("./customers.js"),
  orders: () => import("./orders-api.js"),
  inventory: () => import("./inventory-soap.js"),
  mainframe: () => import("./mainframe-mq.js"),
};

export async function startDemo(opts: DemoOptions): Promise<DemoBackend> {
  const started: DemoBackend[] = [];
  for (const [name, load] of Object.entries(backends)) {
    try {
      started.push(await (await load()).start(opts));
      opts.logger.info({ backend: name }, "demo backend started");
    } catch (err) {
      opts.logger.warn({ backend: name, err }, "demo backend did not start; its connector will report why");
    }
  }
  return {
    async close() {
      await Promise.allSettled(started.map((b) => b.close()));
    },
  };
}
