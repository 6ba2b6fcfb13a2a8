import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

export interface Upstream {
  url: string;
  /** The backend's process (the benchmark's own when it runs in-process). */
  pid: number;
  close(): Promise<void>;
}

const BODY_LIMIT = 64 * 1024;

/**
 * The REST backend both paths call: a small JSON object per item, answered at once, so what is
 * measured is the path to it, not the backend.
 */
export async function serveItems(port = 0): Promise<Server> {
  const server: Server = createServer((req, res) => {
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
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

/**
 * Starts the backend in a process of its own, as a real one is: the direct call and the gateway's
 * call then both cross process boundaries, and the backend's CPU is not counted as the load
 * client's.
 */
export async function startUpstream(): Promise<Upstream> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), "--serve"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      out += chunk;
      const m = /listening (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`upstream exited with code ${code} before listening`)));
  });
  return {
    url,
    pid: child.pid!,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

if (process.argv.includes("--serve")) {
  const server = await serveItems();
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
  process.once("SIGTERM", () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
