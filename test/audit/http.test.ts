import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuditRoutes } from "../../src/audit/http.js";
import type { AuditLog } from "../../src/audit/log.js";
import { parseVerifierKey } from "../../src/audit/note.js";
import { openAuditLog } from "../../src/audit/open.js";
import { verifyConsistencyBundle, verifyInclusionBundle, type ConsistencyBundle } from "../../src/audit/proof-bundle.js";
import type { Identity } from "../../src/core/types.js";
import { testLogger } from "../helpers/logger.js";
import { auditConfig, intent, tempDir } from "./helpers.js";

const t = tempDir("http");
let log: AuditLog;
let server: Server;
let base: string;
const auditor: Identity = { subject: "auditor", scopes: ["audit"], claims: {}, source: "local" };

beforeAll(async () => {
  log = await openAuditLog({ config: auditConfig(), dir: t.dir, logger: testLogger });
  for (let i = 0; i < 10; i++) await log.append(intent({ callId: `h-${i}`, identity: { subject: i % 2 ? "bob" : "alice", scopes: [] } }));
  await log.checkpoint();
  const routes = createAuditRoutes(log);
  // Stands in for src/server: authenticated, audit scope checked, then the handler.
  server = createServer((req, res) => {
    void routes(req, res, { identity: auditor, url: new URL(req.url ?? "/", "http://localhost"), body: undefined });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await log.close();
  t.cleanup();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(`${base}${path}`, { headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

describe("HTTP /audit routes", () => {
  it("GET /audit/records filters and pages", async () => {
    const r = await get("/audit/records?subject=bob&limit=3");
    expect(r.status).toBe(200);
    const page = r.body as { records: { seq: number; record: { event: { callId: string } } }[]; nextCursor: string };
    expect(page.records.map((x) => x.record.event.callId)).toEqual(["h-1", "h-3", "h-5"]);
    const next = (await get(`/audit/records?subject=bob&limit=3&cursor=${page.nextCursor}`)).body as typeof page;
    expect(next.records.map((x) => x.record.event.callId)).toEqual(["h-7", "h-9"]);
    expect((await get("/audit/records?callId=h-4")).body).toMatchObject({ records: [{ seq: 4 }] });
    expect((await get("/audit/records?limit=5000")).status).toBe(400);
    expect((await get("/audit/records?order=sideways")).status).toBe(400);
  });

  it("GET /audit/checkpoint returns the latest signed checkpoint (JSON or the note itself)", async () => {
    const r = await get("/audit/checkpoint");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ origin: log.origin, size: 10 });
    const note = await get("/audit/checkpoint", { accept: "text/plain" });
    expect(note.text.split("\n").slice(0, 2)).toEqual([log.origin, "10"]);
  });

  it("GET /audit/proof/:seq returns a bundle that verifies offline", async () => {
    const r = await get("/audit/proof/6");
    expect(r.status).toBe(200);
    const ok = verifyInclusionBundle(r.body, log.trustedKeys().map(parseVerifierKey), log.origin);
    expect(ok.record.event.callId).toBe("h-6");
    expect((await get("/audit/proof/99")).status).toBe(404);
  });

  it("GET /audit/consistency returns a proof between two sizes", async () => {
    const r = await get("/audit/consistency?from=3&to=10");
    expect(r.status).toBe(200);
    verifyConsistencyBundle(r.body as ConsistencyBundle);
    expect((r.body as ConsistencyBundle).checkpoint).toBeDefined();
    expect((await get("/audit/consistency?from=0&to=10")).status).toBe(400);
    expect((await get("/audit/consistency?from=x&to=10")).status).toBe(400);
  });

  it("answers 404 for unknown paths and 405 for writes", async () => {
    expect((await get("/audit/nothing")).status).toBe(404);
    const res = await fetch(`${base}/audit/records`, { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });
});
