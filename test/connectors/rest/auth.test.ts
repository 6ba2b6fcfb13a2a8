import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { restFactory } from "../../../src/connectors/rest/index.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
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
  type TestServer,
} from "./helpers.js";

const files = tempDir("auth");
const spec = writeSpec(
  files.dir,
  "auth.json",
  oas30({
    "/me": {
      get: {
        operationId: "whoami",
        // A spec-declared header with the auth header's name must not let an agent replace the credential.
        parameters: [
          { name: "X-API-Key", in: "header", schema: { type: "string" } },
          { name: "Authorization", in: "header", schema: { type: "string" } },
        ],
        responses: okJson(),
      },
    },
    "/echo": { post: { operationId: "echo", responses: okJson() } },
  }),
);

let api: TestServer;
let apiBehaviour: (auth: string | undefined) => { status: number; body: unknown };
beforeAll(async () => {
  api = await startServer((req, res) => {
    const { status, body } = apiBehaviour(req.headers.authorization);
    sendJson(res, status, body);
  });
});
beforeEach(() => {
  api.requests.length = 0;
  apiBehaviour = () => ({ status: 200, body: { ok: true } });
});
afterAll(async () => {
  await api.close();
  files.cleanup();
});

describe("static credentials", () => {
  it("apiKey in a header, which the agent cannot override", async () => {
    const c = await makeConnector({
      spec,
      baseUrl: api.url,
      auth: { type: "apiKey", in: "header", name: "X-API-Key", value: "key-123456" },
    });
    const tool = findTool(c, "t__whoami");
    expect(Object.keys(tool.inputSchema.properties!)).toEqual([]);
    await call(c, "t__whoami", {});
    expect(api.requests[0]!.headers["x-api-key"]).toBe("key-123456");
    await c.close();
  });

  it("apiKey in the query string and in a cookie", async () => {
    const q = await makeConnector({
      spec,
      baseUrl: `${api.url}/base?tenant=a`,
      auth: { type: "apiKey", in: "query", name: "api_key", value: "key&123456" },
    });
    await call(q, "t__whoami", {});
    expect(api.requests.at(-1)!.url).toBe("/base/me?tenant=a&api_key=key%26123456");
    await q.close();
    const k = await makeConnector({
      spec,
      baseUrl: api.url,
      auth: { type: "apiKey", in: "cookie", name: "session", value: "cookie-secret" },
    });
    await call(k, "t__whoami", {});
    expect(api.requests.at(-1)!.headers.cookie).toBe("session=cookie-secret");
    await k.close();
  });

  it("bearer and basic", async () => {
    const b = await makeConnector({ spec, baseUrl: api.url, auth: { type: "bearer", token: "tok-abcdef" } });
    await call(b, "t__whoami", {});
    expect(api.requests.at(-1)!.headers.authorization).toBe("Bearer tok-abcdef");
    await b.close();
    const basic = await makeConnector({
      spec,
      baseUrl: api.url,
      auth: { type: "basic", username: "svc", password: "pa:ss-word" },
    });
    await call(basic, "t__whoami", {});
    expect(api.requests.at(-1)!.headers.authorization).toBe(
      `Basic ${Buffer.from("svc:pa:ss-word").toString("base64")}`,
    );
    await basic.close();
  });

  it("an upstream error echoing the Authorization header does not leak it", async () => {
    apiBehaviour = (auth) => ({ status: 400, body: { title: "Bad request", detail: `you sent ${auth}` } });
    const c = await makeConnector({
      spec,
      baseUrl: api.url,
      auth: { type: "bearer", token: "tok-very-secret" },
    });
    const err = await failure(call(c, "t__whoami", {}));
    expect(err.message).toContain("you sent Bearer [REDACTED]");
    expect(JSON.stringify(err)).not.toContain("tok-very-secret");
    expect(JSON.stringify(err.details)).not.toContain("tok-very-secret");
    apiBehaviour = (auth) => ({ status: 200, body: { echoed: auth, nested: [{ again: auth }] } });
    const ok = await call(c, "t__echo", {});
    expect(JSON.stringify(ok)).not.toContain("tok-very-secret");
    expect(ok.structuredContent).toEqual({
      echoed: "Bearer [REDACTED]",
      nested: [{ again: "Bearer [REDACTED]" }],
    });
    await c.close();
  });

  it("logs never carry credentials", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = pino({ level: "trace" }, sink);
    const config = restFactory.configSchema.parse({
      kind: "rest",
      name: "logged",
      spec,
      baseUrl: api.url,
      auth: { type: "apiKey", in: "query", name: "key", value: "query-secret-1" },
    });
    const c = await restFactory.create(config, { baseDir: "/", logger });
    apiBehaviour = () => ({ status: 500, body: { error: "boom" } });
    await failure(c.invoke({ tool: findTool(c, "logged__echo"), arguments: {} }, testContext({ logger })));
    await c
      .invoke({ tool: findTool(c, "logged__whoami"), arguments: {} }, testContext({ logger }))
      .catch(() => {});
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("")).not.toContain("query-secret-1");
    await c.close();
  });
});

describe("OAuth 2.0 client credentials", () => {
  let tokenServer: TestServer;
  let issued: string[];
  let revoked: Set<string>;
  let lifetimeS: number;
  let tokenStatus: number;

  beforeAll(async () => {
    tokenServer = await startServer((req, res, body) => {
      const form = new URLSearchParams(body.toString());
      // RFC 6749 §2.3.1: id and secret are form-encoded, then Basic-encoded.
      const [id, secret] = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64")
        .toString()
        .split(":")
        .map((p) => decodeURIComponent(p.replace(/\+/g, " ")));
      if (tokenStatus !== 200) {
        return sendJson(res, tokenStatus, {
          error: "invalid_client",
          error_description: `bad credentials ${req.headers.authorization ?? ""}`,
        });
      }
      if (id !== "client-1" || secret !== "s3cret+value" || form.get("grant_type") !== "client_credentials") {
        return sendJson(res, 401, { error: "invalid_client" });
      }
      const token = `at-${issued.length + 1}-${Math.random().toString(36).slice(2)}`;
      issued.push(token);
      return sendJson(res, 200, {
        access_token: token,
        token_type: "Bearer",
        expires_in: lifetimeS,
        scope: form.get("scope"),
      });
    });
  });
  beforeEach(() => {
    issued = [];
    revoked = new Set();
    lifetimeS = 3600;
    tokenStatus = 200;
    tokenServer.requests.length = 0;
    apiBehaviour = (auth) => {
      const token = auth?.replace(/^Bearer /, "") ?? "";
      if (!issued.includes(token) || revoked.has(token))
        return { status: 401, body: { title: "token expired" } };
      return { status: 200, body: { ok: true } };
    };
  });
  afterAll(() => tokenServer.close());

  const connector = () =>
    makeConnector({
      name: "oa",
      spec,
      baseUrl: api.url,
      retry: { maxAttempts: 1 },
      auth: {
        type: "oauth2ClientCredentials",
        tokenUrl: `${tokenServer.url}/oauth/token`,
        clientId: "client-1",
        clientSecret: "s3cret+value",
        scopes: ["orders.read", "orders.write"],
      },
    });

  it("fetches one token, caches it, and shares it between concurrent calls", async () => {
    const c = await connector();
    await Promise.all([call(c, "oa__whoami", {}), call(c, "oa__whoami", {}), call(c, "oa__echo", {})]);
    await call(c, "oa__whoami", {});
    expect(tokenServer.requests).toHaveLength(1);
    expect(new URLSearchParams(tokenServer.requests[0]!.body.toString()).get("scope")).toBe(
      "orders.read orders.write",
    );
    expect(new Set(api.requests.map((r) => r.headers.authorization))).toEqual(
      new Set([`Bearer ${issued[0]}`]),
    );
    await c.close();
  });

  it("renews a token before it expires (tokens that expire between two calls)", async () => {
    lifetimeS = 1;
    const c = await connector();
    await call(c, "oa__whoami", {});
    await new Promise((r) => setTimeout(r, 700));
    await call(c, "oa__whoami", {});
    expect(tokenServer.requests).toHaveLength(2);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${issued[0]}`,
      `Bearer ${issued[1]}`,
    ]);
    await c.close();
  });

  it("a token revoked mid-task: the 401 triggers one refresh and one retry, even for a POST", async () => {
    const c = await connector();
    await call(c, "oa__echo", {});
    revoked.add(issued[0]!);
    const result = await call(c, "oa__echo", {});
    expect(result.structuredContent).toEqual({ ok: true });
    expect(tokenServer.requests).toHaveLength(2);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${issued[0]}`,
      `Bearer ${issued[0]}`,
      `Bearer ${issued[1]}`,
    ]);
    await c.close();
  });

  it("a 401 with a fresh token is reported, not retried forever", async () => {
    apiBehaviour = () => ({ status: 401, body: { title: "nope" } });
    const c = await connector();
    const err = await failure(call(c, "oa__whoami", {}));
    expect(err.code).toBe("UPSTREAM_ERROR");
    expect(err.message).toContain("HTTP 401");
    expect(api.requests).toHaveLength(2);
    expect(tokenServer.requests).toHaveLength(2);
    await c.close();
  });

  it("a refused client: UPSTREAM_ERROR naming the token endpoint, without the secret it echoed", async () => {
    tokenStatus = 401;
    const c = await connector();
    const err = await failure(call(c, "oa__whoami", {}));
    expect(err.code).toBe("UPSTREAM_ERROR");
    expect(err.message).toContain(`OAuth token endpoint ${tokenServer.url}/oauth/token`);
    expect(err.message).toContain("invalid_client");
    const encoded = Buffer.from("client-1:s3cret%2Bvalue").toString("base64");
    expect(err.message).not.toContain(encoded);
    expect(err.message).not.toContain("s3cret");
    expect(api.requests).toHaveLength(0);
    await c.close();
  });

  it("an unreachable token endpoint: UPSTREAM_UNAVAILABLE", async () => {
    const down = await startServer(() => undefined);
    const url = down.url;
    await down.close();
    const c = await makeConnector({
      name: "oa2",
      spec,
      baseUrl: api.url,
      auth: {
        type: "oauth2ClientCredentials",
        tokenUrl: `${url}/token`,
        clientId: "c",
        clientSecret: "secret-xyz",
      },
    });
    const err = await failure(call(c, "oa2__echo", {}));
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(err.message).toContain("OAuth token endpoint");
    await c.close();
  });
});
