import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import type { AuditLog } from "../../src/audit/log.js";
import { openAuditLog } from "../../src/audit/open.js";
import type { GatewayError } from "../../src/core/errors.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";
import { rejection } from "../helpers/errors.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function openTemp(overrides: Record<string, unknown> = {}): Promise<{ log: AuditLog; dir: string; file: string }> {
  const t = tempDir("failclosed");
  cleanups.push(t.cleanup);
  const log = await openAuditLog({ config: auditConfig(overrides), dir: t.dir, logger: testLogger });
  cleanups.push(() => log.close());
  return { log, dir: t.dir, file: join(t.dir, "audit.db") };
}

function rowCount(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare<[], { n: number }>("SELECT count(*) AS n FROM records").get()!.n;
  } finally {
    db.close();
  }
}

/** Whether this machine can set the immutable flag (root, chattr installed, a filesystem that has it). */
function chattrWorks(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = tempDir("chattr-probe");
  const file = join(probe.dir, "probe");
  try {
    writeFileSync(file, "x");
    execFileSync("chattr", ["+i", file], { stdio: "ignore" });
    execFileSync("chattr", ["-i", file], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    probe.cleanup();
  }
}

describe("audit log: fail closed", () => {
  it("a database locked by another process: appends are refused with AUDIT_UNAVAILABLE and nothing partial is written", async () => {
    const { log, file } = await openTemp({ busyTimeoutMs: 100 });
    await log.append(intent());
    const other = new Database(file);
    other.exec("BEGIN EXCLUSIVE");
    try {
      const batch = [log.append(intent()), log.append(intent()), log.append(intent())];
      for (const p of batch) {
        const err = await rejection(p);
        expect(err.code).toBe("AUDIT_UNAVAILABLE");
        expect(err.message).toMatch(/cannot record durably: the database is locked \(SQLITE_BUSY\)/);
      }
      expect(log.health().ok).toBe(false);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    expect(rowCount(file)).toBe(1);
    // Once the lock is gone the log recovers and continues the same chain.
    await log.append(intent());
    expect(log.size()).toBe(2);
    expect(log.record(1)!.record.prev).toBe(log.record(0)!.hash);
    expect(log.health().ok).toBe(true);
    expect((await log.verify()).ok).toBe(true);
  });

  it("a full disk (the configured size cap): the append that does not fit is refused, earlier ones are intact", async () => {
    const { log, file } = await openTemp({ maxSizeBytes: 65_536 });
    let accepted = 0;
    let refused: GatewayError | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      try {
        await log.append(intent({ arguments: { blob: "z".repeat(2_000), i } }));
        accepted++;
      } catch (err) {
        refused = err as GatewayError;
      }
    }
    expect(refused?.code).toBe("AUDIT_UNAVAILABLE");
    expect(refused?.message).toMatch(/SQLITE_FULL/);
    expect(accepted).toBeGreaterThan(0);
    expect(rowCount(file)).toBe(accepted);
    const report = await log.verify();
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(accepted);
  });

  it.skipIf(!chattrWorks())("the file made read-only (immutable) mid-run: appends are refused, then recover", async () => {
    const { log, file } = await openTemp();
    await log.append(intent());
    const files = [file, `${file}-wal`];
    execFileSync("chattr", ["+i", ...files]);
    try {
      const err = await rejection(log.append(intent()));
      expect(err.code).toBe("AUDIT_UNAVAILABLE");
      expect(err.message).toMatch(/cannot be written|read-only/);
    } finally {
      execFileSync("chattr", ["-i", ...files]);
    }
    expect(rowCount(file)).toBe(1);
    await log.append(intent());
    expect((await log.verify()).ok).toBe(true);
    expect(log.size()).toBe(2);
  });

  it("an unopenable store: openAuditLog rejects with AUDIT_UNAVAILABLE", async () => {
    const t = tempDir("unopenable");
    cleanups.push(t.cleanup);
    // The configured file is a directory: SQLite cannot open it.
    await expect(
      openAuditLog({ config: auditConfig({ file: "." }), dir: t.dir, logger: testLogger }),
    ).rejects.toMatchObject({ code: "AUDIT_UNAVAILABLE" });
  });

  it("a closed log refuses appends", async () => {
    const { log } = await openTemp();
    await log.close();
    expect((await rejection(log.append(intent()))).code).toBe("AUDIT_UNAVAILABLE");
  });
});
