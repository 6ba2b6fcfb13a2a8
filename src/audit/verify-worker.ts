/**
 * Worker thread for parallel verification: opens the store read-only and verifies segments taken
 * from the shared counter until none is left or the calling thread says stop, posting each result.
 * Started by verify-parallel.ts.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqliteAuditStore } from "./store.js";
import { NEXT_TASK, STOP, verifySegment, type SegmentResult, type WorkerInput } from "./verify-segment.js";

const { file, tasks, shared } = workerData as WorkerInput;
const store = new SqliteAuditStore(file, { readonly: true });
try {
  while (Atomics.load(shared, STOP) === 0) {
    const index = Atomics.add(shared, NEXT_TASK, 1);
    const task = tasks[index];
    if (task === undefined) break;
    let result: SegmentResult;
    try {
      result = verifySegment(store, task);
    } catch (err) {
      result = { ok: false, from: task.from, reason: (err as Error).message };
    }
    parentPort!.postMessage(result);
  }
} finally {
  store.close();
}
