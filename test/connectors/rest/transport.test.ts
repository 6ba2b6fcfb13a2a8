import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { HttpTransport, TransportFailure, type SendOptions } from "../../../src/connectors/rest/http.js";
import { selfSignedCert } from "../../helpers/tls.js";

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

interface Upstream {
  url: string;
  server: Server;
  /** Connections the server accepted. */
  connections: number;
  requests: { headers: IncomingMessage["headers"]; body: Buffer }[];
}

const servers: Server[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.destroy();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

async function upstream(handler: Handler): Promise<Upstream> {
  const up: Upstream = { url: "", server: createServer(), connections: 0, requests: [] };
  up.server.on("connection", () => up.connections++);
  up.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      up.requests.push({ headers: req.headers, body });
      Promise.resolve(handler(req, res, body)).catch(() => res.destroy());
    });
  });
  servers.push(up.server);
  await new Promise<void>((resolve) => up.server.listen(0, "127.0.0.1", resolve));
  up.url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}`;
  return up;
}

function transport(maxResponseBytes = 1024 * 1024): HttpTransport {
  const t = new HttpTransport({ connectTimeoutMs: 2_000, maxSockets: 4, maxResponseBytes });
  transports.push(t);
  return t;
}

function get(url: string, extra: Partial<SendOptions> = {}): SendOptions {
  return { method: "GET", url: new URL(url), headers: {}, signal: AbortSignal.timeout(10_000), ...extra };
}

async function failure(p: Promise<unknown>): Promise<TransportFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransportFailure);
  return err as TransportFailure;
}

const JSON_BODY = JSON.stringify({
  items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })),
});

describe("HttpTransport (undici)", () => {
  it("names itself when the caller sets no User-Agent (token requests) and keeps one that is set", async () => {
    const up = await upstream((_req, res) => res.end("{}"));
    const t = transport();
    await t.send(get(`${up.url}/token`));
    await t.send(get(`${up.url}/call`, { headers: { "User-Agent": "custom-agent/2" } }));
    expect(up.requests.map((r) => r.headers["user-agent"])).toEqual([
      "portcullis-rest-connector",
      "custom-agent/2",
    ]);
  });

  it("asks for compression and decodes gzip, deflate (zlib and raw) and br answers", async () => {
    const encoders: Record<string, (b: Buffer) => Buffer> = {
      gzip: (b) => gzipSync(b),
      deflate: (b) => deflateSync(b),
      "deflate-raw": (b) => deflateRawSync(b),
      br: (b) => brotliCompressSync(b),
    };
    const up = await upstream((req, res) => {
      const kind = req.url!.slice(1);
      const body = encoders[kind]!(Buffer.from(JSON_BODY));
      res
        .writeHead(200, {
          "content-type": "application/json",
          "content-encoding": kind === "deflate-raw" ? "deflate" : kind,
          "content-length": body.length,
          "x-kind": kind,
        })
        .end(body);
    });
    const t = transport();
    for (const kind of Object.keys(encoders)) {
      const res = await t.send(get(`${up.url}/${kind}`));
      expect(res.status).toBe(200);
      expect(res.body.toString("utf8")).toBe(JSON_BODY);
      expect(res.headers["x-kind"]).toBe(kind);
      // Decoded: the wire's encoding and length no longer describe the body.
      expect(res.headers["content-encoding"]).toBeUndefined();
      expect(res.headers["content-length"]).toBeUndefined();
    }
    expect(up.requests.every((r) => r.headers["accept-encoding"] === "gzip, deflate, br")).toBe(true);

    await t.send(get(`${up.url}/gzip`, { headers: { "Accept-Encoding": "identity" } }));
    expect(up.requests.at(-1)!.headers["accept-encoding"]).toBe("identity");
  });

  it("refuses a gzip bomb as too-large without decoding all of it", async () => {
    // 16 MiB of zeros compress to ~16 KiB; the server repeats that gzip member up to 16,384 times
    // (256 GiB decoded, 256 MiB on the wire), far more than socket buffers hold, and counts how
    // many it got to write before the client hung up.
    const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    let written = 0;
    let closed = false;
    const up = await upstream(async (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-encoding": "gzip" });
      const gone = new Promise<void>((resolve) =>
        res.once("close", () => {
          closed = true;
          resolve();
        }),
      );
      while (written < 16384 && !closed) {
        written++;
        if (!res.write(member)) await Promise.race([new Promise((r) => res.once("drain", r)), gone]);
      }
      res.end();
    });
    const started = Date.now();
    const err = await failure(transport(1024 * 1024).send(get(`${up.url}/bomb`)));
    expect(err.kind).toBe("too-large");
    expect(err.message).toBe("response exceeds the 1048576-byte limit");
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect.poll(() => closed).toBe(true);
    expect(written).toBeLessThan(2048);
  });

  it("refuses a declared length over the limit before reading, but only for unencoded bodies", async () => {
    const big = Buffer.alloc(4096, "a");
    // Random bytes grow when gzipped: the declared (compressed) length is over the limit while
    // the decoded body, the one the limit is about, is under it.
    const random = randomBytes(1000);
    const gz = gzipSync(random);
    const limit = 1010;
    expect(gz.length).toBeGreaterThan(limit);
    const up = await upstream((req, res) => {
      if (req.url === "/plain") res.writeHead(200, { "content-length": big.length }).end(big);
      else res.writeHead(200, { "content-encoding": "gzip", "content-length": gz.length }).end(gz);
    });
    const t = transport(limit);
    const err = await failure(t.send(get(`${up.url}/plain`)));
    expect(err.kind).toBe("too-large");
    expect(err.message).toBe(`response of 4096 bytes exceeds the ${limit}-byte limit`);
    expect((await t.send(get(`${up.url}/gz`))).body.equals(random)).toBe(true);
  });

  it("returns a 3xx as it is, without following it", async () => {
    const up = await upstream((req, res) => {
      if (req.url === "/old") res.writeHead(302, { location: "/new" }).end("moved");
      else res.writeHead(200).end("followed");
    });
    const res = await transport().send(get(`${up.url}/old`));
    expect(res.status).toBe(302);
    expect(res.statusText).toBe("Found");
    expect(res.headers.location).toBe("/new");
    expect(res.body.toString()).toBe("moved");
    expect(up.requests).toHaveLength(1);
  });

  it("reads only the head of a large error body", async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" }).end(Buffer.alloc(200 * 1024, "e"));
    });
    const res = await transport(1024).send(get(`${up.url}/`));
    expect(res.status).toBe(500);
    expect(res.body.length).toBe(64 * 1024);
  });

  it("sends a FormData body as multipart with its boundary, parts and length", async () => {
    const up = await upstream((_req, res) => res.writeHead(204).end());
    const form = new FormData();
    form.append("name", "anvil");
    form.append("file", new Blob([Buffer.from([0, 1, 2, 255])]), "file");
    await transport().send({
      ...get(`${up.url}/upload`),
      method: "POST",
      // The caller's content-type cannot carry the boundary: the transport's wins.
      headers: { "Content-Type": "multipart/form-data" },
      data: form,
    });
    const { headers, body } = up.requests[0]!;
    const boundary = /^multipart\/form-data; boundary=(.+)$/.exec(headers["content-type"] ?? "")?.[1];
    expect(boundary).toBeDefined();
    expect(headers["content-length"]).toBe(String(body.length));
    const parts = body.toString("latin1").split(`--${boundary}`);
    expect(parts).toHaveLength(4);
    expect(parts[1]).toContain('Content-Disposition: form-data; name="name"\r\n\r\nanvil\r\n');
    expect(parts[2]).toContain('Content-Disposition: form-data; name="file"; filename="file"');
    expect(parts[2]).toContain("\r\n\r\n\x00\x01\x02\xff\r\n");
    expect(parts[3]).toBe("--\r\n");
  });

  it("does not send connection-management headers the caller names; the transport runs the connection", async () => {
    const up = await upstream((_req, res) => res.writeHead(200).end());
    const headers = {
      Connection: "close",
      "Keep-Alive": "timeout=1",
      "Transfer-Encoding": "chunked",
      TE: "trailers",
      Upgrade: "h2c",
      Expect: "100-continue",
      "X-Kept": "yes",
    };
    const t = transport();
    expect((await t.send(get(`${up.url}/`, { method: "POST", headers, data: "abc" }))).status).toBe(200);
    expect((await t.send(get(`${up.url}/`, { headers }))).status).toBe(200);
    const seen = up.requests[0]!.headers;
    expect(seen["x-kept"]).toBe("yes");
    expect(seen["content-length"]).toBe("3");
    for (const name of ["transfer-encoding", "te", "upgrade", "expect", "keep-alive"])
      expect(seen[name]).toBeUndefined();
    expect(seen.connection).not.toBe("close");
    expect(up.requests[0]!.body.toString()).toBe("abc");
    expect(up.requests[1]!.headers.connection).not.toBe("close");
  });

  it("sends string and Buffer bodies with their byte length", async () => {
    const up = await upstream((_req, res) => res.writeHead(200).end("ok"));
    const t = transport();
    await t.send({ ...get(`${up.url}/`), method: "POST", data: "é€" });
    await t.send({ ...get(`${up.url}/`), method: "PUT", data: Buffer.from([1, 2, 3]) });
    expect(up.requests.map((r) => [r.headers["content-length"], r.body.length])).toEqual([
      ["5", 5],
      ["3", 3],
    ]);
  });

  it("classifies an abort in the middle of the body as cancelled", async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"partial":');
    });
    const controller = new AbortController();
    const t = transport();
    const pending = t.send(get(`${up.url}/`, { signal: controller.signal }));
    await expect.poll(() => up.requests.length).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    const err = await failure(pending);
    expect(err.kind).toBe("cancelled");
    expect(err.message).toBe("cancelled");
  });

  it("classifies a connection reset in the middle of the body as reset after the response", async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": 1000 });
      res.write('{"partial":');
      setTimeout(() => res.socket?.resetAndDestroy(), 30);
    });
    const err = await failure(transport().send(get(`${up.url}/`)));
    expect(err.kind).toBe("reset");
    expect(err.afterResponse).toBe(true);
    expect(err.code).toBe("ECONNRESET");
    expect(err.message).not.toContain("127.0.0.1");
  });

  it("classifies a refused connection as connect, before any response", async () => {
    const up = await upstream((_req, res) => res.end());
    const { url } = up;
    await new Promise<void>((resolve) => up.server.close(() => resolve()));
    const err = await failure(transport().send(get(`${url}/`)));
    expect(err.kind).toBe("connect");
    expect(err.afterResponse).toBe(false);
    expect(err.message).toBe("connection refused");
  });

  it("reuses its keep-alive connections: 100 sequential calls open no connection after the second", async () => {
    const up = await upstream((_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end("{}"),
    );
    const t = transport();
    // undici's pool opens a second connection for the call that follows the first one at once
    // (the first is still marked busy from its connect); from then on both are reused.
    for (let i = 0; i < 2; i++) expect((await t.send(get(`${up.url}/items/${i}`))).status).toBe(200);
    const opened = up.connections;
    expect(opened).toBeLessThanOrEqual(2);
    for (let i = 2; i < 100; i++) expect((await t.send(get(`${up.url}/items/${i}`))).status).toBe(200);
    expect(up.requests).toHaveLength(100);
    expect(up.connections).toBe(opened);
  });

  it("joins repeated response headers and lower-cases their names", async () => {
    const up = await upstream((_req, res) => {
      res.setHeader("Set-Cookie", ["a=1", "b=2"]);
      res.setHeader("X-Trace", "t1");
      res.writeHead(200).end();
    });
    const res = await transport().send(get(`${up.url}/`));
    expect(res.headers["set-cookie"]).toBe("a=1, b=2");
    expect(res.headers["x-trace"]).toBe("t1");
  });

  it("verifies the upstream's TLS certificate: a self-signed one is refused before anything is sent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-rest-tls-"));
    try {
      selfSignedCert(dir, "server", "/CN=127.0.0.1", "IP:127.0.0.1");
      let requests = 0;
      const server = createHttpsServer(
        { key: readFileSync(join(dir, "server.key")), cert: readFileSync(join(dir, "server.crt")) },
        (_req, res) => {
          requests++;
          res.writeHead(200).end("{}");
        },
      );
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/secret`;
      const err = await failure(transport().send(get(url)));
      expect(err.kind).toBe("other");
      expect(err.code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
      expect(err.afterResponse).toBe(false);
      expect(err.message).not.toContain("127.0.0.1");
      expect(requests).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
