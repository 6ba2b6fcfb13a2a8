import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import canonicalize from "canonicalize";
import { afterEach, describe, expect, it, vi } from "vitest";
import { openAuditLog } from "../../src/audit/open.js";
import { openCheckpoint } from "../../src/audit/checkpoint.js";
import { verifyConsistencyBundle, verifyInclusionBundle } from "../../src/audit/proof-bundle.js";
import { parseVerifierKey } from "../../src/audit/note.js";
import { Redactor } from "../../src/audit/redact.js";
import { GatewayError } from "../../src/core/errors.js";
import type { AuditEvent } from "../../src/core/governance.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];

/** True when `text` is exactly the RFC 8785 form of what it encodes (per the reference package). */
function isCanonical(text: string): boolean {
  try {
    return canonicalize(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function openTemp(overrides: Record<string, unknown> = {}) {
  const t = tempDir("log");
  cleanups.push(t.cleanup);
  const config = auditConfig(overrides);
  const log = await openAuditLog({ config, dir: t.dir, logger: testLogger });
  cleanups.push(() => log.close());
  return { log, dir: t.dir, config };
}

describe("audit log: records, chain and checkpoints", () => {
  it("appends durable records with canonical bytes, a prev chain and a signed checkpoint", async () => {
    const { log } = await openTemp();
    await log.append(intent({ callId: "c1" }));
    await log.append({ type: "call.outcome", time: new Date().toISOString(), callId: "c1", outcome: { status: "ok", latencyMs: 12, resultDigest: "sha256:00" } });
    expect(log.size()).toBe(2);
    const r0 = log.record(0)!;
    const r1 = log.record(1)!;
    expect(r0.record.prev).toBe("0".repeat(64));
    expect(r1.record.prev).toBe(r0.hash);
    expect(r1.record.event.type).toBe("call.outcome");
    const raw = [...log.rawRecords()].map((r) => r.body.toString("utf8"));
    expect(raw.every(isCanonical)).toBe(true);

    const cp = await log.checkpoint();
    const opened = openCheckpoint(cp.note, [parseVerifierKey(log.trustedKeys()[0]!)], log.origin);
    expect(opened.size).toBe(2);
    expect(cp.note.split("\n").slice(0, 2)).toEqual([log.origin, "2"]);
    const report = await log.verify();
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.unattested).toBe(0);
  });

  it("group-commits many concurrent appends into one consistent chain", async () => {
    const { log } = await openTemp({ maxBatch: 50, checkpoint: { everyRecords: 97 } });
    const calls = Array.from({ length: 2000 }, (_, i) => log.append(intent({ callId: `par-${i}` })));
    await Promise.all(calls);
    expect(log.size()).toBe(2000);
    const ids = new Set([...log.rawRecords()].map((r) => r.columns.callId));
    expect(ids.size).toBe(2000);
    const report = await log.verify();
    expect(report.ok).toBe(true);
    expect(report.verified).toBe(2000);
    // 40 transactions of 50; everyRecords=97 issued a checkpoint every other one, and all matched.
    expect(report.checkpointsChecked).toBeGreaterThan(10);
  });

  it("redacts configured argument paths with a keyed digest and lists them", async () => {
    const { log } = await openTemp({
      redaction: {
        key: "k".repeat(40),
        rules: [
          { connector: "payments", paths: ["card.number", "items[*].iban", "**.password"] },
          { tool: "orders__get_order", paths: ["orderId"] },
        ],
      },
    });
    await log.append(
      intent({
        connector: "payments",
        tool: "payments__charge",
        arguments: { card: { number: "4111111111111111", expiry: "12/30" }, items: [{ iban: "DE00" }, { iban: "FR00" }], auth: { password: "pw" } },
      }),
    );
    await log.append(intent({ arguments: { orderId: "o-secret" } }));
    await log.append(intent({ connector: "payments", tool: "payments__charge", arguments: { card: { number: "4111111111111111" } } }));
    const [a, b, c] = [log.record(0)!, log.record(1)!, log.record(2)!].map((r) => r.record.event);
    const argsA = a!.arguments as { card: { number: string; expiry: string }; items: { iban: string }[]; auth: { password: string } };
    expect(argsA.card.number).toMatch(/^hmac-sha256:[0-9a-f]{8}:/);
    expect(argsA.card.expiry).toBe("12/30");
    expect(argsA.items[1]!.iban).toMatch(/^hmac-sha256:/);
    expect(argsA.auth.password).toMatch(/^hmac-sha256:/);
    expect(a!.redacted).toEqual(["$.arguments.auth.password", "$.arguments.card.number", "$.arguments.items[0].iban", "$.arguments.items[1].iban"]);
    expect((b!.arguments as { orderId: string }).orderId).toMatch(/^hmac-sha256:/);
    // Same value, same key: same digest, so investigators can still correlate.
    expect((c!.arguments as { card: { number: string } }).card.number).toBe(argsA.card.number);
    expect(JSON.stringify([...log.rawRecords()].map((r) => r.body.toString()))).not.toContain("4111111111111111");
  });

  it("a redaction digest is HMAC-SHA256 of the canonical value, for keys shorter and longer than a block", () => {
    for (const key of ["k".repeat(32), "x".repeat(64), "y".repeat(65), "schlüssel-🔑-".repeat(12)]) {
      const redactor = new Redactor([{ connector: "*", tool: "*", paths: ["a"] }], key);
      for (const value of ["4111111111111111", { b: [1, "é"], a: null }, "v".repeat(5_000), 19.99]) {
        const mac = createHmac("sha256", key).update(canonicalize(value)!).digest("base64url");
        expect(redactor.digest(value)).toBe(`hmac-sha256:${redactor.keyId}:${mac}`);
      }
    }
  });

  it("a hole in an array is recorded as null, also beside an index-like member name (was written as `undefined`, not JSON)", async () => {
    const { log } = await openTemp();
    // eslint-disable-next-line no-sparse-arrays
    await log.append(intent({ arguments: { "1": "index-like", list: [1, , 3], missing: [undefined] } }));
    expect(log.record(0)!.record.event.arguments).toEqual({ "1": "index-like", list: [1, null, 3], missing: [null] });
    expect((await log.verify()).ok).toBe(true);
  });

  it("records big integers and bigint as decimal strings, and refuses what JSON cannot carry", async () => {
    const { log } = await openTemp();
    await log.append(intent({ arguments: { amount: 2 ** 60, exact: 12345678901234567890n as unknown as number, price: 19.99 } }));
    const ev = log.record(0)!.record.event;
    expect(ev.arguments).toEqual({ amount: "1152921504606846976", exact: "12345678901234567890", price: 19.99 });
    expect(ev.numbersAsText).toEqual(["$.arguments.amount", "$.arguments.exact"]);
    const err = await log.append(intent({ arguments: { x: Number.NaN } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe("AUDIT_UNAVAILABLE");
    expect((err as GatewayError).message).toContain("$.arguments.x");
    expect(log.size()).toBe(1);
  });

  it("appendLater builds the event when the queue is written, and a read right after sees it", async () => {
    const { log } = await openTemp();
    let built = 0;
    const outcome = (): AuditEvent => {
      built++;
      return { type: "call.outcome", time: new Date().toISOString(), callId: "late-1", outcome: { status: "ok", latencyMs: 3 } };
    };
    const first = log.appendLater(outcome);
    expect(built).toBe(0);
    // A read is a reason to write the queue now (read-your-writes), not on the next turn.
    expect(log.size()).toBe(1);
    expect(built).toBe(1);
    await first;
    expect(log.record(0)!.record.event).toMatchObject({ type: "call.outcome", callId: "late-1" });

    const second = log.appendLater(outcome);
    expect(built).toBe(1);
    await second;
    expect(built).toBe(2);
    expect(log.size()).toBe(2);
    expect((await log.verify()).ok).toBe(true);
  });

  it("appendLater: a build that throws or an event the log refuses fails alone; its batch is written", async () => {
    const { log } = await openTemp();
    const results = await Promise.allSettled([
      log.append(intent({ callId: "ok-1" })),
      log.appendLater(() => {
        throw new Error("digest failed");
      }),
      log.appendLater(() => intent({ callId: "bad-1", arguments: { x: Number.NaN } })),
      log.appendLater(() => intent({ callId: "ok-2" })),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    const [, thrown, refusedRecord] = results.map((r) => (r.status === "rejected" ? (r.reason as GatewayError) : undefined));
    expect(thrown).toBeInstanceOf(GatewayError);
    expect(thrown!.code).toBe("AUDIT_UNAVAILABLE");
    expect(thrown!.message).toBe("audit record refused: digest failed");
    expect(refusedRecord!.code).toBe("AUDIT_UNAVAILABLE");
    expect(refusedRecord!.message).toContain("$.arguments.x");
    expect([...log.rawRecords()].map((r) => r.columns.callId)).toEqual(["ok-1", "ok-2"]);
    expect((await log.verify()).ok).toBe(true);
  });

  it("append with `now` commits on this turn's microtasks, taking what was queued before it", async () => {
    const { log } = await openTemp({ checkpoint: { everyRecords: 100_000 } });
    const commits = vi.spyOn(log.store, "writeTransaction");
    let nextTurn = false;
    setImmediate(() => (nextTurn = true));
    await log.append(intent({ callId: "now-1" }), { now: true });
    expect(nextTurn).toBe(false);
    expect(commits).toHaveBeenCalledTimes(1);

    // Queued for the next turn, then taken along by a `now` append: one commit, in append order,
    // still on this turn. (Three callers wait on it, so its fsync runs in the thread pool.)
    let commitsByNextTurn = -1;
    setImmediate(() => (commitsByNextTurn = commits.mock.calls.length));
    const queued = [log.append(intent({ callId: "q-1" })), log.appendLater(() => intent({ callId: "q-2" }))];
    await log.append(intent({ callId: "now-2" }), { now: true });
    await Promise.all(queued);
    await new Promise((r) => setImmediate(r)); // the pool's fsync may have answered before that turn
    expect(commitsByNextTurn).toBe(2);
    expect(commits).toHaveBeenCalledTimes(2);

    // Without `now`, one turn's appends wait for the next turn and share its commit.
    nextTurn = false;
    setImmediate(() => (nextTurn = true));
    await Promise.all([log.append(intent({ callId: "g-1" })), log.append(intent({ callId: "g-2" }))]);
    expect(nextTurn).toBe(true);
    expect(commits).toHaveBeenCalledTimes(3);
    expect([...log.rawRecords()].map((r) => r.columns.callId)).toEqual(["now-1", "q-1", "q-2", "now-2", "g-1", "g-2"]);
    expect((await log.verify()).ok).toBe(true);
  });

  it("reads the stored tail only when another connection has committed since this one last looked", async () => {
    const { log, dir, config } = await openTemp({ checkpoint: { everyRecords: 100_000 } });
    await log.append(intent({ callId: "first" }));
    const lastRecord = vi.spyOn(log.store, "lastRecord");
    await log.append(intent({ callId: "second" }));
    await log.append(intent({ callId: "third" }));
    expect(lastRecord).not.toHaveBeenCalled();

    // Another writer on the same file appends: the next commit here notices and continues its chain.
    const other = await openAuditLog({ config, dir, logger: testLogger });
    await other.append(intent({ callId: "other" }));
    await other.close();
    await log.append(intent({ callId: "fourth" }));
    expect(lastRecord).toHaveBeenCalled();
    expect([...log.rawRecords()].map((r) => r.columns.callId).filter((c) => c !== null)).toEqual([
      "first",
      "second",
      "third",
      "other",
      "fourth",
    ]);
    expect((await log.verify()).ok).toBe(true);
  });

  it("appendLater on a closed log is refused without building", async () => {
    const { log } = await openTemp();
    await log.close();
    let built = false;
    const err = await log
      .appendLater(() => {
        built = true;
        return intent();
      })
      .catch((e: unknown) => e);
    expect((err as GatewayError).code).toBe("AUDIT_UNAVAILABLE");
    expect(built).toBe(false);
  });

  it("queries by time range, subject, tool, connector, outcome and call id, with paging", async () => {
    const { log } = await openTemp();
    for (let i = 0; i < 30; i++) {
      await log.append(
        intent({
          time: new Date(Date.UTC(2025, 5, 1, 0, 0, i)).toISOString(),
          callId: `q-${i}`,
          identity: { subject: i % 2 === 0 ? "alice" : "bob", scopes: [] },
          tool: i % 3 === 0 ? "crm__find" : "orders__get_order",
          connector: i % 3 === 0 ? "crm" : "orders",
        }),
      );
    }
    await log.append({ type: "call.refused", time: "2025-06-01T00:01:00Z", callId: "q-x", decision: { allowed: false, code: "DENIED_CONSTRAINT" } });
    await log.append({ type: "call.outcome", time: "2025-06-01T00:01:01Z", callId: "q-1", outcome: { status: "error", latencyMs: 3, errorCode: "UPSTREAM_ERROR" } });
    expect(log.query({ subject: "bob", limit: 1000 }).records).toHaveLength(15);
    expect(log.query({ tool: "crm__find" }).records).toHaveLength(10);
    expect(log.query({ connector: "crm", subject: "alice" }).records.map((r) => r.record.event.callId)).toEqual(["q-0", "q-6", "q-12", "q-18", "q-24"]);
    expect(log.query({ from: "2025-06-01T00:00:10Z", to: "2025-06-01T00:00:20Z" }).records).toHaveLength(10);
    expect(log.query({ outcome: "denied" }).records.map((r) => r.record.event.callId)).toEqual(["q-x"]);
    expect(log.query({ outcome: "error" }).records.map((r) => r.record.event.callId)).toEqual(["q-1"]);
    expect(log.query({ callId: "q-1" }).records.map((r) => r.record.event.type)).toEqual(["call.intent", "call.outcome"]);
    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = log.query({ limit: 7, ...(cursor ? { cursor } : {}) });
      seen.push(...page.records.map((r) => r.seq));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(log.query({ order: "desc", limit: 2 }).records.map((r) => r.seq)).toEqual([31, 30]);
    expect(() => log.query({ limit: 0 })).toThrow(/limit/);
    expect(() => log.query({ from: "yesterday" })).toThrow(/ISO-8601/);
    expect(() => log.query({ cursor: "abc" })).toThrow(/cursor/);
  });

  it("proves inclusion of every record and consistency between every pair of sizes", async () => {
    const { log } = await openTemp();
    for (let i = 0; i < 21; i++) await log.append(intent());
    await log.checkpoint();
    const keys = log.trustedKeys().map(parseVerifierKey);
    for (let seq = 0; seq < 21; seq++) {
      const bundle = log.prove(seq);
      const ok = verifyInclusionBundle(JSON.parse(JSON.stringify(bundle)), keys, log.origin);
      expect(ok.seq).toBe(seq);
      expect(ok.treeSize).toBe(21);
    }
    for (let a = 1; a <= 21; a++) for (let b = a; b <= 21; b++) verifyConsistencyBundle(log.consistency(a, b));
    const bundle = log.prove(5);
    const forged = { ...bundle, record: bundle.record.replace('"seq":5', '"seq":5 ') };
    expect(() => verifyInclusionBundle(forged, keys)).toThrow();
    const other = { ...bundle, seq: 6 };
    expect(() => verifyInclusionBundle(other, keys)).toThrow();
  });

  it("reopens where it left off, writes checkpoints to the external directory and POSTs them", async () => {
    const received: string[] = [];
    const server: Server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        received.push(`${req.method} ${req.headers["content-type"]} ${req.headers.authorization}\n${body}`);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/witness`;
    const t = tempDir("reopen");
    cleanups.push(t.cleanup);
    const config = auditConfig({ checkpoint: { external: { directory: "external", url, headers: { authorization: "Bearer t" } } } });
    const first = await openAuditLog({ config, dir: t.dir, logger: testLogger });
    for (let i = 0; i < 5; i++) await first.append(intent());
    await first.close();
    const second = await openAuditLog({ config, dir: t.dir, logger: testLogger });
    cleanups.push(() => second.close());
    await second.append(intent());
    expect(second.size()).toBe(6);
    expect(second.record(5)!.record.prev).toBe(second.record(4)!.hash);
    await second.checkpoint();
    const latest = readFileSync(join(t.dir, "external", "checkpoint"), "utf8");
    expect(latest.split("\n")[1]).toBe("6");
    expect(existsSync(join(t.dir, "external", "checkpoints.log"))).toBe(true);
    expect(received.length).toBeGreaterThan(0);
    expect(received.at(-1)).toMatch(/^POST text\/plain; charset=utf-8 Bearer t\n/);
    expect(received.at(-1)).toContain(`${second.origin}\n6\n`);
    expect((await second.verify()).ok).toBe(true);
  });

  it("refuses to change the origin of an existing log", async () => {
    const { dir, log } = await openTemp();
    await log.close();
    await expect(openAuditLog({ config: auditConfig({ origin: "other.example/log" }), dir, logger: testLogger })).rejects.toThrow(
      /origin cannot change/,
    );
  });
});
