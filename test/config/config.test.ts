import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/load-file.js";
import { loadConnectorFiles, loadGatewayConfig } from "../../src/config/load.js";
import { connectorFactories, factoryFor } from "../../src/connectors/index.js";
import type { Connector, ToolDefinition } from "../../src/core/index.js";
import { ToolRegistry } from "../../src/gateway/registry.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-config-"));
  mkdirSync(join(dir, "connectors"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function problemsOf(fn: () => unknown): ConfigError["problems"] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

const kinds = Object.keys(connectorFactories);
const loadConnectors = (env: NodeJS.ProcessEnv = {}) =>
  loadConnectorFiles(join(dir, "connectors"), (k) => factoryFor(k)?.configSchema, kinds, env);

describe("gateway config errors name the file, the path, the line, what was expected and what was found", () => {
  it("malformed JSON: line and column of the syntax error", () => {
    const file = write(
      "mcp.config.json",
      '{\n  "server": { "name": "x" },\n  "limits": { "pageSize": 10, }\n}\n',
    );
    const [p] = problemsOf(() => loadGatewayConfig(file));
    expect(p!.file).toMatch(/mcp\.config\.json$/);
    expect(p!.line).toBe(3);
    expect(p!.message).toMatch(/malformed JSON/);
  });

  it("unknown key: its path and line, and where to check the spelling", () => {
    const file = write("mcp.config.json", '{\n  "transports": {\n    "http": { "prot": 8080 }\n  }\n}\n');
    const [p] = problemsOf(() => loadGatewayConfig(file));
    expect(p!.path).toBe("transports.http.prot");
    expect(p!.line).toBe(3);
    expect(p!.message).toContain('unknown key "prot"');
  });

  it("wrong type: expected versus found", () => {
    const file = write("mcp.config.json", '{ "transports": { "http": { "port": "80a" } } }');
    const [p] = problemsOf(() => loadGatewayConfig(file));
    expect(p!.path).toBe("transports.http.port");
    expect(p!.message).toBe('expected number, found string "80a"');
  });

  it("bad value: out of range", () => {
    const file = write("mcp.config.json", '{ "transports": { "http": { "port": 70000 } } }');
    const [p] = problemsOf(() => loadGatewayConfig(file));
    expect(p!.path).toBe("transports.http.port");
    expect(p!.message).toMatch(/65535.*found number 70000/);
  });

  it("missing environment variable: names the variable and the path, never a value", () => {
    const file = write(
      "mcp.config.json",
      '{ "identity": { "jwt": { "issuer": "${ISSUER_URL}", "jwksUrl": "https://idp.example/jwks" } } }',
    );
    const [p] = problemsOf(() => loadGatewayConfig(file, {}));
    expect(p!.path).toBe("identity.jwt.issuer");
    expect(p!.message).toContain("environment variable ISSUER_URL is not set");
  });

  it("environment references resolve, with defaults", () => {
    const file = write(
      "mcp.config.json",
      '{ "server": { "name": "${NAME}" }, "logging": { "level": "${LEVEL:-warn}" } }',
    );
    const { config } = loadGatewayConfig(file, { NAME: "gw-eu" });
    expect(config.server.name).toBe("gw-eu");
    expect(config.logging.level).toBe("warn");
  });

  it("a missing file says so and how to point at the right one", () => {
    const [p] = problemsOf(() => loadGatewayConfig(join(dir, "nope.json")));
    expect(p!.message).toContain("file not found");
    expect(p!.message).toContain("--config");
  });

  it("reports every problem of a file at once", () => {
    const file = write(
      "mcp.config.json",
      '{ "bogus": 1, "limits": { "pageSize": 0 }, "logging": { "level": "loud" } }',
    );
    const problems = problemsOf(() => loadGatewayConfig(file));
    expect(problems.map((p) => p.path).sort()).toEqual(["bogus", "limits.pageSize", "logging.level"]);
  });
});

describe("connector file errors", () => {
  it("unknown kind lists the kinds there are", () => {
    write("connectors/x.json", '{ "kind": "ftp", "name": "x" }');
    const [p] = problemsOf(() => loadConnectors());
    expect(p!.file).toMatch(/connectors\/x\.json$/);
    expect(p!.path).toBe("kind");
    expect(p!.message).toContain('unknown connector kind "ftp"');
    for (const k of kinds) expect(p!.message).toContain(k);
  });

  it("missing kind", () => {
    write("connectors/x.json", '{ "name": "x" }');
    const [p] = problemsOf(() => loadConnectors());
    expect(p!.message).toContain('required "kind" is missing');
  });

  it("invalid connector name", () => {
    write("connectors/x.json", '{ "kind": "sql", "name": "bad name!", "engine": "sqlite", "file": "x.db" }');
    const problems = problemsOf(() => loadConnectors());
    expect(problems.some((p) => p.path === "name")).toBe(true);
  });

  it("two files claiming one connector name: both named", () => {
    const body =
      '{ "kind": "sql", "name": "dup", "engine": "sqlite", "file": "x.db", "query": { "enabled": true } }';
    write("connectors/a.json", body);
    write("connectors/b.json", body);
    const p = problemsOf(() => loadConnectors()).find((q) => q.message.includes("already used"));
    expect(p!.file).toMatch(/b\.json$/);
    expect(p!.path).toBe("name");
    expect(p!.message).toMatch(/already used by .*a\.json/);
  });
});

describe("tool registry", () => {
  const fake = (name: string, tools: string[]): Connector => ({
    name,
    kind: "test",
    tools: () =>
      tools.map((t): ToolDefinition => ({
        name: t,
        connector: name,
        operation: t,
        description: t,
        inputSchema: { type: "object" },
        annotations: {
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      })),
    invoke: () => Promise.reject(new Error("not called")),
    health: () => Promise.resolve({ ok: true }),
    close: () => Promise.resolve(),
  });

  it("a tool name collision is a load error naming both sources", () => {
    const problems = problemsOf(() =>
      ToolRegistry.build([
        { connector: fake("a", ["a__x"]), file: "connectors/a.json", timeoutMs: 1 },
        { connector: fake("b", ["a__x"]), file: "connectors/b.json", timeoutMs: 1 },
      ]),
    );
    expect(problems[0]!.message).toContain('"a__x" is provided twice');
    expect(problems[0]!.message).toContain("connectors/a.json");
    expect(problems[0]!.message).toContain("connectors/b.json");
  });

  it("a name outside ^[a-zA-Z0-9_-]{1,64}$ is refused", () => {
    const problems = problemsOf(() =>
      ToolRegistry.build([
        { connector: fake("a", ["a__has space", "a__" + "x".repeat(70)]), file: "a.json", timeoutMs: 1 },
      ]),
    );
    expect(problems).toHaveLength(2);
  });

  it("orders tools by name whatever the connector order", () => {
    const registry = ToolRegistry.build([
      { connector: fake("z", ["z__b", "z__a"]), file: "z.json", timeoutMs: 1 },
      { connector: fake("m", ["m__c"]), file: "m.json", timeoutMs: 1 },
    ]);
    expect(registry.tools.map((t) => t.def.name)).toEqual(["m__c", "z__a", "z__b"]);
  });
});

describe("secrets in config errors", () => {
  it("never shows the value of a credential-bearing field, only what is wrong", () => {
    write(
      "connectors/pg.json",
      '{ "kind": "sql", "name": "pg", "engine": "postgres", "url": "http://admin:s3cret@db:5432/x", "query": { "enabled": true } }',
    );
    const problems = problemsOf(() => loadConnectors());
    const text = problems.map((p) => p.message).join("\n");
    expect(problems.some((p) => p.path === "url")).toBe(true);
    expect(text).not.toContain("s3cret");
  });
});
