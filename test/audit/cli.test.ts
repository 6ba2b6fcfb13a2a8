import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAuditCommand, type CliEnv } from "../../src/audit/cli.js";
import { openAuditLog } from "../../src/audit/open.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

interface Run {
  code: number;
  out: string;
  err: string;
}

const t = tempDir("cli");
const config = auditConfig();
let verifierKey = "";

async function run(...argv: string[]): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c.toString()));
  stderr.on("data", (c: Buffer) => (err += c.toString()));
  const env: CliEnv = { auditDir: "/nonexistent", auditConfig: config, stdout, stderr };
  const code = await runAuditCommand([...argv, ...(argv[0] === "verify-proof" ? [] : ["--audit-dir", t.dir])], env);
  return { code, out, err };
}

beforeAll(async () => {
  const log = await openAuditLog({ config, dir: t.dir, logger: testLogger });
  for (let i = 0; i < 12; i++) {
    await log.append(intent({ callId: `cli-${i}`, identity: { subject: i < 4 ? "alice" : "bob", scopes: [] } }));
  }
  await log.append({ type: "call.outcome", time: "2025-02-01T00:00:00Z", callId: "cli-3", outcome: { status: "error", latencyMs: 5, errorCode: "UPSTREAM_TIMEOUT" } });
  verifierKey = log.trustedKeys()[0]!;
  await log.close();
});
afterAll(() => t.cleanup());

describe("portcullis audit CLI", () => {
  it("verify: exit 0 and a summary on an intact log", async () => {
    const r = await run("verify", "--key", verifierKey);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK: .*audit\.db: 13 records verified/);
    const json = await run("verify", "--json", "--progress");
    expect(JSON.parse(json.out)).toMatchObject({ ok: true, size: 13, verified: 13 });
    expect(json.err).toMatch(/verifying: 13\/13 records \(100%\)/);
  });

  it("query: filters, formats and paging", async () => {
    const table = await run("query", "--subject", "alice");
    expect(table.code).toBe(0);
    expect(table.out.trim().split("\n")).toHaveLength(5);
    expect(table.out).toContain("cli-0");
    const jsonl = await run("query", "--call-id", "cli-3", "--format", "jsonl");
    const lines = jsonl.out.trim().split("\n").map((l) => JSON.parse(l) as { record: { event: { type: string } } });
    expect(lines.map((l) => l.record.event.type)).toEqual(["call.intent", "call.outcome"]);
    const errors = await run("query", "--outcome", "error", "--format", "table");
    expect(errors.out).toContain("error UPSTREAM_TIMEOUT");
    const page = await run("query", "--limit", "5", "--format", "json");
    const parsed = JSON.parse(page.out) as { records: unknown[]; nextCursor: string };
    expect(parsed.records).toHaveLength(5);
    const next = await run("query", "--limit", "5", "--cursor", parsed.nextCursor, "--format", "json");
    expect((JSON.parse(next.out) as { records: { seq: number }[] }).records[0]!.seq).toBe(5);
    expect((await run("query", "--format", "xml")).code).toBe(2);
    expect((await run("query", "--from", "not-a-time")).code).toBe(2);
  });

  it("export: every record's exact bytes and the checkpoints as JSONL", async () => {
    const out = join(t.dir, "export.jsonl");
    expect((await run("export", "--out", out)).code).toBe(0);
    const lines = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { type: string; record?: string; seq?: number });
    expect(lines[0]).toMatchObject({ type: "header", origin: config.origin, size: 13 });
    const records = lines.filter((l) => l.type === "record");
    expect(records).toHaveLength(13);
    const db = new Database(join(t.dir, "audit.db"), { readonly: true });
    const stored = db.prepare<[], { body: Buffer }>("SELECT body FROM records ORDER BY seq").all();
    db.close();
    expect(records.map((r) => r.record)).toEqual(stored.map((s) => s.body.toString("utf8")));
    expect(lines.filter((l) => l.type === "checkpoint").length).toBeGreaterThan(0);
  });

  it("prove + verify-proof: works offline with only the verifier key, and rejects a doctored proof", async () => {
    const file = join(t.dir, "proof-7.json");
    expect((await run("prove", "7", "--out", file)).code).toBe(0);
    const ok = await run("verify-proof", file, "--key", verifierKey);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^OK: record 7 \(call\.intent .* call cli-7\) is in .* at tree size 13/);

    const bundle = JSON.parse(readFileSync(file, "utf8")) as { record: string };
    bundle.record = bundle.record.replace("cli-7", "cli-8");
    const bad = join(t.dir, "proof-7-bad.json");
    writeFileSync(bad, JSON.stringify(bundle));
    const failed = await run("verify-proof", bad, "--key", verifierKey);
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/^FAILED/);

    const keyDir = join(t.dir, "otherkeys");
    const other = await run("keygen", "--name", "someone-else", "--out", keyDir);
    const wrongKey = await run("verify-proof", file, "--key", other.out.trim());
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.out).toMatch(/not signed by any trusted key/);
    expect((await run("prove", "99")).code).toBe(3);
  });

  it("keygen: writes a 0600 private key and prints the verifier key", async () => {
    const dir = join(t.dir, "newkeys");
    const r = await run("keygen", "--name", "audit.example/prod", "--out", dir);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toMatch(/^audit\.example\/prod\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/);
    expect(r.err).toMatch(/trustedKeys/);
    const id = r.out.trim().split("+")[1]!;
    const { statSync } = await import("node:fs");
    const keyFile = join(dir, `audit.example_prod-${id}.key`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, "utf8")).toMatch(/^PRIVATE\+KEY\+audit\.example\/prod\+/);
  });

  it("verify: exit 1 naming kind and seq after tampering; usage errors exit 2", async () => {
    const db = new Database(join(t.dir, "audit.db"));
    db.exec("DROP TRIGGER records_no_delete");
    db.prepare("DELETE FROM records WHERE seq = 4").run();
    db.close();
    const r = await run("verify");
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAILED: .*: deleted at seq 4: records 4\.\.4 are missing/);
    expect(r.out).toMatch(/warning: append-only triggers missing: records_no_delete/);
    expect((await run("frobnicate")).code).toBe(2);
    expect((await run("verify", "--bogus")).code).toBe(2);
  });
});
