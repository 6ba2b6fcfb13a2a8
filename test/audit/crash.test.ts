import { spawn } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { openAuditLog, openAuditReader } from "../../src/audit/open.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

const CHILD = join(import.meta.dirname, "fixtures", "crash-child.ts");

/** Runs the appending child until it has acknowledged `acks` records, then SIGKILLs it. */
function runAndKill(dir: string, acks: number): Promise<Set<string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir, "32"], { stdio: ["ignore", "pipe", "pipe"] });
    const acked = new Set<string>();
    let buffer = "";
    let stderr = "";
    let killed = false;
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) if (line.startsWith("ack ")) acked.add(line.slice(4));
      if (!killed && acked.size >= acks) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(acked);
      else reject(new Error(`child exited with ${code}: ${stderr.slice(0, 2000)}`));
    });
  });
}

describe("audit log: crash safety", () => {
  it("after kill -9 under load, the log verifies and holds every acknowledged append", async () => {
    const t = tempDir("crash");
    cleanups.push(t.cleanup);
    const acked = await runAndKill(t.dir, 3000);
    expect(acked.size).toBeGreaterThanOrEqual(3000);

    const db = new Database(join(t.dir, "audit.db"), { readonly: true });
    const stored = new Set(db.prepare<[], { call_id: string }>("SELECT call_id FROM records").all().map((r) => r.call_id));
    db.close();
    const lost = [...acked].filter((id) => !stored.has(id));
    expect(lost).toEqual([]);

    const config = auditConfig({ origin: "crash.test/audit" });
    const reader = openAuditReader({ config, dir: t.dir });
    const report = await reader.verify();
    await reader.close();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(stored.size);

    // The restarted gateway continues the same chain and signs what the crash left unsigned.
    const log = await openAuditLog({ config, dir: t.dir, logger: testLogger });
    const reopened = await log.verify();
    expect(reopened.ok).toBe(true);
    expect(reopened.unattested).toBe(0);
    await log.append(intent());
    const after = await log.verify();
    await log.close();
    expect(after.ok).toBe(true);
    expect(after.verified).toBe(stored.size + 1);
  }, 60_000);
});
