/**
 * Worker thread for parallel verification: opens the store read-only and verifies the segments
 * it is sent, one message each. Started by verify-parallel.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqliteAuditStore } from "./store.js";
import { verifySegment, type SegmentTask } from "./verify-segment.js";

const { file } = workerData as { file: string };
const store = new SqliteAuditStore(file, { readonly: true });
parentPort!.on("message", (task: SegmentTask | null) => {
  if (task === null) {
    store.close();
    parentPort!.close();
    return;
  }
  let result;
  try {
    result = verifySegment(store, task);
  } catch (err) {
    result = { ok: false, from: task.from, reason: (err as Error).message };
  }
  parentPort!.postMessage(result);
});
