import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/config/load.js";
import type { RunningHttpServer } from "../../src/server/http.js";
import { startRuntime, type Runtime } from "../../src/server/runtime.js";
import { startHttp } from "../../src/server/serve-http.js";
import { createDeployment, type Deployment } from "../helpers/deployment.js";
import { testLogger } from "../helpers/logger.js";
import {
  startIssuer,
  startRecordingServer,
  type RecordingServer,
  type TestIssuer,
} from "../helpers/upstreams.js";

const AUDIENCE = "https://gateway.test/mcp";
const text = (r: { content: unknown }): string => (r.content as { text: string }[])[0]!.text;

/** Through the whole pipeline: a real upstream that fails on cue, the breaker, the loop guard. */
describe("per-upstream resilience and the loop guard, end to end", () => {
  let deployment: Deployment;
  let upstream: RecordingServer;
  let issuer: TestIssuer;
  let runtime: Runtime;
  let http: RunningHttpServer;
  let failing = false;

  beforeAll(async () => {
    issuer = await startIssuer();
    upstream = await startRecordingServer(() =>
      failing ? { status: 503, json: { error: "down" } } : { json: { ok: true } },
    );
    deployment = createDeployment({
      config: {
        transports: { http: { port: 0, publicUrl: AUDIENCE } },
        identity: {
          jwt: { issuer: issuer.issuer, jwksUrl: issuer.jwksUrl, algorithms: ["ES256"] },
          local: { subject: "tester@example.com", scopes: ["tester"] },
        },
        limits: { loopGuard: { maxRepeats: 3, windowSec: 60 } },
      },
    });
    mkdirSync(join(deployment.dir, "connectors", "specs"));
    deployment.write("connectors/specs/jobs.json", {
      openapi: "3.0.3",
      info: { title: "jobs", version: "1" },
      paths: {
        "/jobs": {
          post: {
            operationId: "submitJob",
            parameters: [{ name: "ref", in: "query", required: true, schema: { type: "string" } }],
            responses: {
              "200": { description: "ok", content: { "application/json": { schema: { type: "object" } } } },
            },
          },
        },
      },
    });
    deployment.write("connectors/jobs.json", {
      kind: "rest",
      name: "jobs",
      spec: "specs/jobs.json",
      baseUrl: upstream.url,
      resilience: {
        breaker: { consecutiveFailures: 2, halfOpenAfterMs: 400 },
        perTool: { consecutiveFailures: 2 },
      },
    });
    deployment.write("scopes/tester.json", { name: "tester", description: "All.", tools: ["*"] });
    runtime = await startRuntime(loadGatewayConfig(deployment.configPath), testLogger);
    http = await startHttp(runtime, testLogger, { port: 0 });
  });

  afterAll(async () => {
    await http?.close();
    await runtime?.close();
    await upstream?.close();
    await issuer?.close();
    deployment?.cleanup();
  });

  it("opens the circuit after repeated upstream failures, fails fast without calling out, and recovers", async () => {
    const me = runtime.localIdentity!;
    failing = true;
    for (let i = 0; i < 2; i++) {
      const r = await runtime.gateway.callTool(me, "jobs__submitJob", { ref: `fail-${i}` });
      expect(text(r)).toMatch(/^UPSTREAM_ERROR:.*503/);
    }
    const hits = upstream.requests.length;
    const fast = await runtime.gateway.callTool(me, "jobs__submitJob", { ref: "fast" });
    expect(text(fast)).toMatch(/^UPSTREAM_UNAVAILABLE:.*circuit open.*retry after/);
    expect(upstream.requests.length).toBe(hits);
    const metrics = await runtime.metrics.render();
    expect(metrics.body).toMatch(/portcullis_circuit_state\{connector="jobs"\} 2/);

    failing = false;
    await new Promise((r) => setTimeout(r, 500));
    const probe = await runtime.gateway.callTool(me, "jobs__submitJob", { ref: "probe" });
    expect(probe.isError).toBeFalsy();
    expect(upstream.requests.length).toBe(hits + 1);
    expect((await runtime.metrics.render()).body).toMatch(/portcullis_circuit_state\{connector="jobs"\} 0/);
  });

  it("refuses the same call repeated past the loop guard's limit, and audits it", async () => {
    const me = runtime.localIdentity!;
    for (let i = 0; i < 3; i++) {
      expect((await runtime.gateway.callTool(me, "jobs__submitJob", { ref: "same" })).isError).toBeFalsy();
    }
    const hits = upstream.requests.length;
    const looped = await runtime.gateway.callTool(me, "jobs__submitJob", { ref: "same" });
    expect(text(looped)).toMatch(/^DENIED_LOOP:/);
    expect(upstream.requests.length).toBe(hits);
    // Other arguments are not a loop.
    expect((await runtime.gateway.callTool(me, "jobs__submitJob", { ref: "other" })).isError).toBeFalsy();
    const refused = runtime.governance.auditLog!.query({ type: "call.refused", limit: 100 }).records;
    const codes = refused.map(
      (r) => (r.record as unknown as { event: { decision?: { code?: string } } }).event.decision?.code,
    );
    expect(codes).toContain("DENIED_LOOP");
  });

  it("refuses admin calls without the admin scope, and audits the attempt", async () => {
    const token = await issuer.sign({ aud: AUDIENCE, sub: "mallory", scope: "tester" });
    const res = await fetch(new URL("/admin/connectors", http.url), {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(403);
    const records = runtime.governance.auditLog!.query({ type: "admin.refused", limit: 10 }).records;
    const event = (
      records.at(-1)!.record as unknown as {
        event: { identity: { subject: string }; detail: { path: string } };
      }
    ).event;
    expect(event.identity.subject).toBe("mallory");
    expect(event.detail.path).toBe("/admin/connectors");
  });

  it("reports a required connector that is down in /readyz", async () => {
    deployment.write("connectors/ghost.json", {
      kind: "rest",
      name: "ghost",
      spec: "specs/jobs.json",
      baseUrl: "http://127.0.0.1:9",
      required: true,
      healthPath: "/healthz",
    });
    const report = await runtime.reload("test");
    expect(report.ok).toBe(true);
    const res = await fetch(new URL("/readyz", http.url));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { connectors: Record<string, string> };
    expect(body.connectors.ghost).toMatch(/^down/);
    expect(body.connectors.jobs).toBe("up");
  });
});
