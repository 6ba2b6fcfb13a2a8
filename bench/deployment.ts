import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateLargeSpec } from "../test/connectors/rest/generate-large-spec.js";

export interface BenchDeployment {
  dir: string;
  configPath: string;
  cleanup(): void;
}

/** The identity every load client acts as; its scope decides what tools/list shows. */
export const BENCH_SUBJECT = "bench-agent@example.com";
export const BENCH_SCOPE = "bench";

/** The tool the latency and throughput phases call: GET /items/{id} on the upstream. */
export const ITEM_TOOL = "shop__getItem";

const itemSpec = {
  openapi: "3.0.3",
  info: { title: "shop", version: "1.0.0" },
  paths: {
    "/items/{id}": {
      get: {
        operationId: "getItem",
        summary: "One item by id",
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", maxLength: 64 } }],
        responses: {
          "200": {
            description: "the item",
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  properties: {
                    id: { type: "string" },
                    name: { type: "string" },
                    qty: { type: "integer" },
                    price: { type: "string" },
                    status: { type: "string" },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

export type DeploymentShape =
  /** One REST connector with one tool: the call path; optionally answers held for the outcome record. */
  | { kind: "calls"; outcomeBeforeAnswer?: boolean }
  /** Two REST connectors of `tools / 2` operations each; the identity's scope grants one of them. */
  | { kind: "list"; tools: number }
  /** One REST connector over a `operations`-operation OpenAPI spec: startup cost. */
  | { kind: "startup"; operations: number };

/**
 * A throwaway deployment directory laid out like the repository (mcp.config.json, connectors/,
 * scopes/, audit/), with the audit log at its defaults: durable SQLite, group commit, signed
 * checkpoints. Only the loopback identity and the HTTP port differ from a fresh install.
 */
export function createBenchDeployment(shape: DeploymentShape, upstreamUrl: string): BenchDeployment {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-"));
  for (const sub of ["connectors", "connectors/specs", "scopes", "audit"]) mkdirSync(join(dir, sub));
  const write = (relPath: string, value: unknown): void =>
    writeFileSync(join(dir, relPath), `${JSON.stringify(value, null, 2)}\n`);

  const rest = (name: string, spec: string) => ({ kind: "rest", name, spec, baseUrl: upstreamUrl });
  let granted: string[];
  switch (shape.kind) {
    case "calls":
      write("connectors/specs/shop.json", itemSpec);
      write("connectors/shop.json", rest("shop", "specs/shop.json"));
      granted = ["shop__*"];
      break;
    case "list": {
      const half = Math.floor(shape.tools / 2);
      write("connectors/specs/large.json", generateLargeSpec(half));
      write("connectors/visible.json", rest("visible", "specs/large.json"));
      write("connectors/hidden.json", rest("hidden", "specs/large.json"));
      granted = ["visible__*"];
      break;
    }
    case "startup":
      write("connectors/specs/large.json", generateLargeSpec(shape.operations));
      write("connectors/big.json", rest("big", "specs/large.json"));
      granted = ["big__*"];
      break;
  }
  write(`scopes/${BENCH_SCOPE}.json`, {
    name: BENCH_SCOPE,
    description: "What the benchmark's agent may call.",
    tools: granted,
  });
  write("mcp.config.json", {
    transports: { http: { enabled: true, host: "127.0.0.1", port: 0 } },
    identity: { local: { subject: BENCH_SUBJECT, scopes: [BENCH_SCOPE], overHttp: true } },
    logging: { level: process.env.BENCH_LOG_LEVEL ?? "info" },
    ...(shape.kind === "calls" && shape.outcomeBeforeAnswer ? { audit: { outcomeBeforeAnswer: true } } : {}),
  });
  return {
    dir,
    configPath: join(dir, "mcp.config.json"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
