import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

export interface GatewayCommand {
  command: string;
  args: string[];
  /** How the report names it. */
  shown: string;
}

/** `node dist/cli.js`: the build users run. */
export function gatewayCommand(repoRoot: string, nodeFlags: string[] = []): GatewayCommand {
  return {
    command: process.execPath,
    args: [...nodeFlags, join(repoRoot, "dist/cli.js")],
    shown: `node ${[...nodeFlags, "dist/cli.js"].join(" ")}`,
  };
}

export interface HttpGateway {
  url: URL;
  pid: number;
  /** Spawn until the "Streamable HTTP at" line, in milliseconds. */
  startupMs: number;
  /** SIGTERM and wait for a graceful exit (a CPU profile is written then). */
  stop(): Promise<number | null>;
}

const READY = /Streamable HTTP at (\S+)/;

/** Starts `serve --http` as a child process and waits until it announces its URL. */
export async function startHttpGateway(
  cmd: GatewayCommand,
  configPath: string,
  timeoutMs = 120_000,
): Promise<HttpGateway> {
  const started = performance.now();
  const child: ChildProcess = spawn(cmd.command, [...cmd.args, "serve", "--http", "--config", configPath], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let tail = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<URL>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start within ${timeoutMs} ms; last output:\n${tail}`));
    }, timeoutMs);
    let found = false;
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      // The log stream is drained for the whole run (a full pipe would stall the gateway);
      // only a short tail is kept, for error messages.
      tail = (tail + chunk).slice(-4000);
      if (found) return;
      const match = READY.exec(tail);
      if (match) {
        found = true;
        clearTimeout(timer);
        resolve(new URL(match[1]!));
      }
    });
    void exited.then((code) => {
      if (found) return;
      clearTimeout(timer);
      reject(new Error(`gateway exited with code ${code} before it was ready:\n${tail}`));
    });
  });
  const startupMs = performance.now() - started;
  return {
    url,
    pid: child.pid!,
    startupMs,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
