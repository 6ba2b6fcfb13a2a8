import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DEFAULT_HEAP_GROWING_PERCENT, DEFAULT_YOUNG_GENERATION_MB } from "../../src/server/heap.js";
import { cliCommand, createDeployment, type Deployment } from "../helpers/deployment.js";

describe("MCP over stdio (real child process)", () => {
  let deployment: Deployment;
  let client: Client;
  let transport: StdioClientTransport;
  let stderr = "";

  beforeAll(async () => {
    deployment = createDeployment({ extraTools: 3, config: { logging: { level: "info" } } });
    const { command, args } = cliCommand("serve", "--stdio", "--config", deployment.configPath);
    transport = new StdioClientTransport({ command, args, stderr: "pipe" });
    transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    client = new Client({ name: "stdio-test", version: "1.0.0" });
    await client.connect(transport);
  });

  afterAll(async () => {
    await client?.close();
    deployment?.cleanup();
  });

  it("initializes with the tools capability and server info", () => {
    expect(client.getServerCapabilities()?.tools).toEqual({ listChanged: true });
    expect(client.getServerVersion()?.name).toBe("portcullis");
  });

  it("lists every tool across pages, in name order, with an opaque cursor", async () => {
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      expect(page.tools.length).toBeLessThanOrEqual(2);
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names).toEqual([
      "inv__count_000",
      "inv__count_001",
      "inv__count_002",
      "inv__get_item",
      "inv__query",
      "inv__set_qty",
    ]);
  });

  it("refuses a forged cursor with -32602", async () => {
    const forged = Buffer.from("pc1:-5").toString("base64url");
    await expect(client.listTools({ cursor: forged })).rejects.toMatchObject({ code: -32602 });
    await expect(client.listTools({ cursor: "not-a-cursor" })).rejects.toMatchObject({ code: -32602 });
  });

  it("calls a SQL tool and returns structuredContent plus text", async () => {
    const result = await client.callTool({ name: "inv__get_item", arguments: { sku: "A-1" } });
    expect(result.isError).toBeFalsy();
    const structured = result.structuredContent as { rows: Record<string, unknown>[] };
    expect(structured.rows).toEqual([{ id: 1, sku: "A-1", name: "anvil", qty: 3, price: "199.99" }]);
    const content = result.content as { type: string; text: string }[];
    expect(content[0]!.type).toBe("text");
    expect(JSON.parse(content[0]!.text)).toEqual(structured);
  });

  it("answers an unknown tool with JSON-RPC -32602", async () => {
    const err = await client.callTool({ name: "inv__nope", arguments: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(-32602);
  });

  it("lists every argument violation by field as an isError result", async () => {
    const result = await client.callTool({ name: "inv__set_qty", arguments: { qty: -1, extra: true } });
    expect(result.isError).toBe(true);
    const text = (result.content as { text: string }[])[0]!.text;
    expect(text).toMatch(/^INVALID_ARGUMENTS:/);
    expect(text).toContain("sku: is required");
    expect(text).toContain("qty: must be >= 0");
  });

  it("keeps stdout for the protocol: logs arrive on stderr as JSON", async () => {
    // Log lines are written in batches, at most LOG_FLUSH_MS after the first.
    await vi.waitFor(() => expect(stderr).toContain('"msg":"call refused"'), { timeout: 2_000 });
    const lines = stderr.split("\n").filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(stderr).toContain("serving MCP over stdio");
  });

  it("says at start-up how it tuned V8's heap (growth, young generation cap)", async () => {
    await vi.waitFor(() => expect(stderr).toContain('"msg":"V8 heap tuned"'), { timeout: 2_000 });
    const tuned = stderr
      .split("\n")
      .filter((l) => l.includes('"msg":"V8 heap tuned"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(tuned).toHaveLength(1);
    expect(tuned[0]).toMatchObject({
      heapGrowth: `--heap-growing-percent=${DEFAULT_HEAP_GROWING_PERCENT}`,
      youngGenerationMb: DEFAULT_YOUNG_GENERATION_MB,
    });
  });
});

describe("stdio without an identity", () => {
  it("refuses to start and says how to configure one", async () => {
    const deployment = createDeployment({ config: { identity: {} } });
    try {
      const { command, args } = cliCommand("serve", "--stdio", "--config", deployment.configPath);
      const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(code).toBe(1);
      expect(out).toBe("");
      expect(err).toContain("no identity for stdio");
      expect(err).toContain("identity.local");
    } finally {
      deployment.cleanup();
    }
  });
});

describe("stdio with a token from the environment", () => {
  it("verifies the token like an HTTP bearer token and serves that identity's view", async () => {
    const { startIssuer } = await import("../helpers/upstreams.js");
    const issuer = await startIssuer();
    const audience = "https://gateway.test/mcp";
    const deployment = createDeployment({
      config: {
        transports: { http: { publicUrl: audience } },
        identity: {
          jwt: { issuer: issuer.issuer, jwksUrl: issuer.jwksUrl, algorithms: ["ES256"] },
          tokenEnv: "PORTCULLIS_TOKEN",
        },
      },
    });
    try {
      const token = await issuer.sign({ aud: audience, sub: "agent-7", scope: "reader" });
      const { command, args } = cliCommand("serve", "--stdio", "--config", deployment.configPath);
      const transport = new StdioClientTransport({
        command,
        args,
        env: { ...process.env, PORTCULLIS_TOKEN: token } as Record<string, string>,
        stderr: "pipe",
      });
      const client = new Client({ name: "stdio-token", version: "1.0.0" });
      await client.connect(transport);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["inv__get_item"]);
      await client.close();

      const bad = await issuer.sign({ aud: "https://elsewhere/mcp", sub: "agent-7", scope: "reader" });
      const child = spawn(command, args, {
        env: { ...process.env, PORTCULLIS_TOKEN: bad },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      expect(await new Promise<number | null>((resolve) => child.on("exit", resolve))).toBe(1);
      expect(err).toMatch(/aud/i);
      expect(err).not.toContain(bad);
    } finally {
      await issuer.close();
      deployment.cleanup();
    }
  });
});
