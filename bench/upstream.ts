import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Upstream {
  url: string;
  requests(): number;
  close(): Promise<void>;
}

const BODY_LIMIT = 64 * 1024;

/**
 * The REST backend both paths call: a small JSON object per item, answered at once, so what is
 * measured is the path to it, not the backend.
 */
export async function startUpstream(): Promise<Upstream> {
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) req.destroy();
    });
    req.on("end", () => {
      const id = decodeURIComponent(/^\/items\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "none");
      const body = JSON.stringify({ id, name: "anvil", qty: 3, price: "199.99", status: "active" });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
