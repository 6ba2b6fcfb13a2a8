import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RestConnector } from "../../../src/connectors/rest/index.js";
import {
  call,
  failure,
  makeConnector,
  oas30,
  okJson,
  sendJson,
  startServer,
  tempDir,
  writeSpec,
  type Handler,
  type TestServer,
} from "./helpers.js";

const item = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "integer" }, name: { type: "string" } },
};
const spec = oas30({
  "/items": {
    get: {
      operationId: "listItems",
      parameters: [{ name: "q", in: "query", schema: { type: "string" } }],
      responses: okJson({ type: "object", properties: { items: { type: "array", items: item } } }),
    },
    post: {
      operationId: "createItem",
      requestBody: { required: true, content: { "application/json": { schema: item } } },
      responses: { "201": { description: "created", content: { "application/json": { schema: item } } } },
    },
  },
  "/items/{id}": {
    parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
    get: { operationId: "getItem", responses: okJson(item) },
    put: {
      operationId: "putItem",
      requestBody: { content: { "application/json": { schema: item } } },
      responses: okJson(item),
    },
  },
  "/raw": { get: { operationId: "getRaw", responses: { "200": { description: "anything" } } } },
  "/report": {
    get: {
      operationId: "getReport",
      responses: okJson({
        type: "object",
        properties: { rows: { type: "array" }, title: { type: "string" } },
      }),
    },
  },
});

describe("rest connector: calls and failures", () => {
  let server: TestServer;
  let connector: RestConnector;
  let behave: Handler;
  const files = tempDir("calls");

  beforeAll(async () => {
    server = await startServer((req, res, body) => behave(req, res, body));
    const file = writeSpec(files.dir, "items.json", spec);
    connector = await makeConnector({
      name: "items",
      spec: file,
      baseUrl: `${server.url}/api`,
      retry: { initialDelayMs: 10, maxDelayMs: 50 },
      idempotencyKey: true,
      maxResultBytes: 2_000,
      maxResponseBytes: 100_000,
      tools: { getReport: { project: ["/title", "/rows/*/id"] } },
    });
  });
  beforeEach(() => {
    server.requests.length = 0;
    behave = (_req, res) => sendJson(res, 200, { id: 1, name: "one" });
  });
  afterAll(async () => {
    await connector.close();
    await server.close();
    files.cleanup();
  });

  describe("no host from arguments (SSRF)", () => {
    it.each([
      ["../admin", "/api/items/..%2Fadmin"],
      ["%2F..%2Fadmin", "/api/items/%252F..%252Fadmin"],
      ["http://evil.test/x", "/api/items/http%3A%2F%2Fevil.test%2Fx"],
      ["//evil.test", "/api/items/%2F%2Fevil.test"],
      ["a?b#c", "/api/items/a%3Fb%23c"],
    ])("encodes the path value %j into one segment under the base URL", async (id, path) => {
      await call(connector, "items__getItem", { id });
      expect(server.requests).toHaveLength(1);
      expect(server.requests[0]!.url).toBe(path);
      expect(server.requests[0]!.headers.host).toBe(`127.0.0.1:${server.port}`);
    });

    it.each([".", ".."])("refuses the dot segment %j as a path value", async (id) => {
      const err = await failure(call(connector, "items__getItem", { id }));
      expect(err.code).toBe("INVALID_ARGUMENTS");
      expect(server.requests).toHaveLength(0);
    });

    it("refuses header values with line breaks (header injection)", async () => {
      const local = await makeConnector({
        spec: writeSpec(
          files.dir,
          "hdr.json",
          oas30({
            "/h": {
              get: {
                operationId: "h",
                parameters: [{ name: "X-Tenant", in: "header", schema: { type: "string" } }],
                responses: okJson(),
              },
            },
          }),
        ),
        baseUrl: server.url,
      });
      const err = await failure(call(local, "t__h", { "X-Tenant": "a\r\nX-Admin: 1" }));
      expect(err.code).toBe("INVALID_ARGUMENTS");
      await local.close();
    });
  });

  it("propagates traceparent and sends no Idempotency-Key on idempotent calls", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await call(connector, "items__getItem", { id: "1" }, { traceparent });
    expect(server.requests[0]!.headers.traceparent).toBe(traceparent);
    expect(server.requests[0]!.headers["idempotency-key"]).toBeUndefined();
  });

  it("sends the same Idempotency-Key, derived from the call id, on a POST", async () => {
    await call(connector, "items__createItem", { body: { id: 5 } }, { callId: "call-abc" });
    await call(connector, "items__createItem", { body: { id: 5 } }, { callId: "call-abc" });
    await call(connector, "items__createItem", { body: { id: 5 } }, { callId: "call-other" });
    const keys = server.requests.map((r) => r.headers["idempotency-key"]);
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).not.toBe(keys[0]);
  });

  describe("retries", () => {
    it("retries a GET after 503 and 502, then succeeds", async () => {
      let n = 0;
      behave = (_req, res) => {
        n++;
        if (n === 1) return sendJson(res, 503, { title: "busy" });
        if (n === 2) return sendJson(res, 502, { title: "bad gateway" });
        return sendJson(res, 200, { id: 1 });
      };
      const result = await call(connector, "items__getItem", { id: "1" });
      expect(result.structuredContent).toEqual({ id: 1 });
      expect(server.requests).toHaveLength(3);
    });

    it("never retries a POST, even on 503", async () => {
      behave = (_req, res) => sendJson(res, 503, { title: "busy" });
      const err = await failure(call(connector, "items__createItem", { body: { id: 1 } }));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 503");
      expect(server.requests).toHaveLength(1);
    });

    it("gives up after maxAttempts with the last status in the message", async () => {
      behave = (_req, res) => sendJson(res, 504, { title: "timeout upstream" });
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 504");
      expect(server.requests).toHaveLength(3);
    });

    it("honours Retry-After on 429", async () => {
      const times: number[] = [];
      behave = (_req, res) => {
        times.push(Date.now());
        if (times.length === 1) return sendJson(res, 429, { title: "slow down" }, { "retry-after": "1" });
        return sendJson(res, 200, { id: 2 });
      };
      const result = await call(connector, "items__getItem", { id: "2" });
      expect(result.structuredContent).toEqual({ id: 2 });
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
    });

    it("does not wait for a Retry-After beyond the time budget", async () => {
      behave = (_req, res) => sendJson(res, 429, { title: "slow down" }, { "retry-after": "120" });
      const err = await failure(call(connector, "items__getItem", { id: "2" }, { timeoutMs: 2_000 }));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 429");
      expect(server.requests).toHaveLength(1);
    });

    it("does not retry a 4xx", async () => {
      behave = (_req, res) => sendJson(res, 404, { title: "nope" });
      await failure(call(connector, "items__getItem", { id: "1" }));
      expect(server.requests).toHaveLength(1);
    });
  });

  describe("error mapping", () => {
    it("4xx: UPSTREAM_ERROR with status and the problem details an agent can act on", async () => {
      behave = (_req, res) => {
        res.writeHead(422, { "content-type": "application/problem+json" }).end(
          JSON.stringify({
            type: "https://example.test/validation",
            title: "Invalid item",
            status: 422,
            detail: "name is too long",
            errors: [{ pointer: "/name", message: "max 10 characters" }],
          }),
        );
      };
      const err = await failure(
        call(connector, "items__createItem", { body: { id: 1, name: "x".repeat(20) } }),
      );
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 422");
      expect(err.message).toContain("Invalid item: name is too long");
      expect(err.message).toContain("max 10 characters");
      expect(err.details).toMatchObject({ status: 422, problem: { title: "Invalid item" } });
    });

    it("caps a huge error body to a short excerpt", async () => {
      behave = (_req, res) => res.writeHead(400, { "content-type": "text/plain" }).end("bad ".repeat(50_000));
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.message.length).toBeLessThan(900);
      expect(err.message).toContain("(truncated)");
    });

    it("summarises an HTML error page instead of showing it", async () => {
      behave = (_req, res) =>
        res.writeHead(500, { "content-type": "text/html" }).end("<html><body>Oops</body></html>");
      const err = await failure(call(connector, "items__createItem", { body: { id: 1 } }));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 500");
      expect(err.message).toContain("HTML error page");
      expect(err.message).not.toContain("<body>");
    });

    it("does not follow redirects (they could leave the configured server)", async () => {
      behave = (_req, res) => res.writeHead(302, { location: "http://169.254.169.254/latest" }).end();
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toContain("HTTP 302");
      expect(server.requests).toHaveLength(1);
    });

    it("invalid JSON: UPSTREAM_BAD_RESPONSE", async () => {
      behave = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"id": 1,');
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toContain("invalid JSON");
    });

    it("a response that breaks the spec's schema: UPSTREAM_BAD_RESPONSE naming the field", async () => {
      behave = (_req, res) => sendJson(res, 200, { id: "not-a-number" });
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toContain("/id must be integer");
    });

    it("binary content is refused clearly", async () => {
      behave = (_req, res) => res.writeHead(200, { "content-type": "image/png" }).end(Buffer.alloc(64, 1));
      const err = await failure(call(connector, "items__getRaw", {}));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toContain("binary content (image/png, 64 bytes)");
    });

    it("a chunked body over maxResponseBytes is cut off while streaming", async () => {
      let closedEarly = false;
      behave = (_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.on("close", () => {
          closedEarly = !res.writableEnded;
        });
        let sent = 0;
        const pump = () => {
          while (sent < 5_000_000) {
            sent += 10_000;
            if (!res.write("x".repeat(10_000))) return void res.once("drain", pump);
          }
          res.end();
        };
        pump();
      };
      const err = await failure(call(connector, "items__getRaw", {}));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toContain("100000-byte limit");
      await new Promise((r) => setTimeout(r, 100));
      expect(closedEarly).toBe(true);
    });

    it("a declared Content-Length over the limit is refused before reading", async () => {
      behave = (_req, res) =>
        res
          .writeHead(200, { "content-type": "application/json", "content-length": "500000" })
          .end("{}".padEnd(500_000));
      const err = await failure(call(connector, "items__getRaw", {}));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toContain("500000 bytes exceeds");
    });

    /** A POST to an upstream that answers after 3 s: how the call failed, and how soon. */
    async function slowCall(
      ctx: Parameters<typeof call>[3],
    ): Promise<{ err: Awaited<ReturnType<typeof failure>>; ms: number }> {
      behave = (_req, res) => void setTimeout(() => sendJson(res, 200, { id: 1 }), 3_000);
      const started = Date.now();
      const err = await failure(call(connector, "items__createItem", { body: { id: 1 } }, ctx));
      return { err, ms: Date.now() - started };
    }

    it("timeout: UPSTREAM_TIMEOUT within the call's budget", async () => {
      const { err, ms } = await slowCall({ timeoutMs: 300 });
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      expect(err.message).toContain("300 ms");
      expect(ms).toBeLessThan(2_500);
    });

    it("a connection reset: UPSTREAM_UNAVAILABLE, retried for a GET", async () => {
      behave = (req) => req.socket.destroy();
      const err = await failure(call(connector, "items__getItem", { id: "1" }));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(/reset|closed the connection/);
      expect(server.requests).toHaveLength(3);
    });

    it("a connection cut mid-body: UPSTREAM_UNAVAILABLE saying so", async () => {
      behave = (req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"id":');
        setTimeout(() => req.socket.destroy(), 20);
      };
      const err = await failure(call(connector, "items__createItem", { body: { id: 1 } }));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(/closed the connection|reset/);
    });

    it("a caller's deadline later than the connector's budget: the budget still ends the call", async () => {
      // The caller's signal never aborts: only the connector's own timer can stop this call.
      const { err, ms } = await slowCall({ timeoutMs: 300, deadline: performance.now() + 60_000 });
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      expect(err.message).toContain("300 ms");
      expect(ms).toBeLessThan(2_500);
    });

    it("a caller's deadline within the budget: the caller's signal ends the call when it aborts", async () => {
      const ac = new AbortController();
      const timeout = new DOMException("The operation was aborted due to timeout", "TimeoutError");
      setTimeout(() => ac.abort(timeout), 200);
      const { err, ms } = await slowCall({
        signal: ac.signal,
        timeoutMs: 5_000,
        deadline: performance.now() + 200,
      });
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      expect(ms).toBeLessThan(2_500);
      expect(server.requests).toHaveLength(1);
    });

    it("client cancellation mid-call aborts the request", async () => {
      behave = (_req, res) => void setTimeout(() => sendJson(res, 200, { id: 1 }), 3_000);
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error("client went away")), 100);
      const err = await failure(call(connector, "items__getItem", { id: "1" }, { signal: ac.signal }));
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      expect(err.message).toContain("cancelled");
    });
  });

  describe("results", () => {
    it("projects the response to the configured JSON pointers", async () => {
      behave = (_req, res) =>
        sendJson(res, 200, {
          title: "Q1",
          secret: "x",
          rows: [
            { id: 1, pii: "a" },
            { id: 2, pii: "b" },
          ],
        });
      const result = await call(connector, "items__getReport", {});
      expect(result.structuredContent).toEqual({ title: "Q1", rows: [{ id: 1 }, { id: 2 }] });
      expect(connector.tools().find((t) => t.name === "items__getReport")!.outputSchema).toBeUndefined();
    });

    it("shortens a result over maxResultBytes and says so with an explicit marker", async () => {
      const items = Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item number ${i}` }));
      behave = (_req, res) => sendJson(res, 200, { items });
      const result = await call(connector, "items__listItems", {});
      const sc = result.structuredContent as { items: unknown[]; _truncated: Record<string, number> };
      expect(Buffer.byteLength(JSON.stringify(sc))).toBeLessThanOrEqual(2_000);
      expect(sc.items.length).toBeGreaterThan(0);
      expect(sc.items.length).toBeLessThan(200);
      expect(sc.items[0]).toEqual(items[0]);
      expect(sc._truncated).toEqual({
        omittedItems: 200 - sc.items.length,
        originalBytes: Buffer.byteLength(JSON.stringify({ items })),
        limitBytes: 2_000,
      });
    });

    it("caps long text results with a truncation note", async () => {
      behave = (_req, res) =>
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("é".repeat(5_000));
      const result = await call(connector, "items__getRaw", {});
      expect(result.text).toMatch(/…\[truncated: showing \d+ of 10000 bytes\]$/);
      expect(Buffer.byteLength(result.text!)).toBeLessThan(2_100);
    });

    it("wraps a non-object JSON value without a declared schema", async () => {
      behave = (_req, res) => sendJson(res, 200, [1, 2, 3]);
      const result = await call(connector, "items__getRaw", {});
      expect(result.structuredContent).toEqual({ result: [1, 2, 3] });
    });
  });
});

describe("rest connector: retrying non-idempotent operations only when configured", () => {
  const files = tempDir("retry-post");
  let server: TestServer;
  let n = 0;
  beforeAll(async () => {
    server = await startServer((_req, res) =>
      ++n % 2 === 1 ? sendJson(res, 503, {}) : sendJson(res, 201, { id: n }),
    );
  });
  afterAll(async () => {
    await server.close();
    files.cleanup();
  });
  const doc = oas30({
    "/orders": { post: { operationId: "createOrder", responses: okJson() } },
    "/charges": { post: { operationId: "charge", "x-idempotent": true, responses: okJson() } },
  });

  it("retry.nonIdempotent retries a POST with the same Idempotency-Key, so the upstream can drop the duplicate", async () => {
    const c = await makeConnector({
      spec: writeSpec(files.dir, "a.json", doc),
      baseUrl: server.url,
      idempotencyKey: { header: "X-Idempotency-Key" },
      retry: { nonIdempotent: true, initialDelayMs: 5 },
    });
    server.requests.length = 0;
    await call(c, "t__createOrder", {});
    expect(server.requests).toHaveLength(2);
    const keys = server.requests.map((r) => r.headers["x-idempotency-key"]);
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(keys[1]).toBe(keys[0]);
    await c.close();
  });

  it("x-idempotent: true on an operation makes it retryable and marks it idempotent", async () => {
    const c = await makeConnector({
      spec: writeSpec(files.dir, "b.json", doc),
      baseUrl: server.url,
      retry: { initialDelayMs: 5 },
    });
    expect(c.tools().find((t) => t.name === "t__charge")!.annotations.idempotentHint).toBe(true);
    server.requests.length = 0;
    n = 0;
    await call(c, "t__charge", {});
    expect(server.requests).toHaveLength(2);
    n = 0;
    server.requests.length = 0;
    await failure(call(c, "t__createOrder", {}));
    expect(server.requests).toHaveLength(1);
    await c.close();
  });
});

describe("rest connector: unreachable upstream", () => {
  it("connection refused: UPSTREAM_UNAVAILABLE, and health says so", async () => {
    // Reserve a port, then close it, so nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const files = tempDir("refused");
    const connector = await makeConnector({
      spec: writeSpec(
        files.dir,
        "s.json",
        oas30({ "/x": { post: { operationId: "x", responses: okJson() } } }),
      ),
      baseUrl: `http://127.0.0.1:${port}`,
    });
    const err = await failure(call(connector, "t__x", {}));
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(err.message).toContain("connection refused");
    expect((await connector.health()).ok).toBe(false);
    await connector.close();
    files.cleanup();
  });
});
