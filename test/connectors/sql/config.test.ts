import { describe, expect, it } from "vitest";
import { sqlFactory } from "../../../src/connectors/sql/index.js";
import { testLogger } from "../../helpers/logger.js";

const base = {
  kind: "sql",
  name: "crm",
  engine: "postgres",
  url: "postgres://app:Sup3rSecret@db.internal:5432/crm",
};

const tool = (extra: Record<string, unknown>) => ({
  name: "find",
  description: "Find one",
  statement: "SELECT * FROM customers WHERE id = :id",
  parameters: { id: { type: "integer" } },
  readOnly: true,
  ...extra,
});

function issues(raw: unknown): { path: string; message: string }[] {
  const result = sqlFactory.configSchema.safeParse(raw);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

describe("sql connector config", () => {
  it("accepts a complete valid file", () => {
    expect(issues({ ...base, maxRows: 100, tools: [tool({})], query: { enabled: true } })).toEqual([]);
  });

  it("names connector, tool and parameter for a statement using an undeclared parameter", () => {
    const found = issues({
      ...base,
      tools: [tool({ statement: "SELECT * FROM c WHERE id = :id AND org = :org" })],
    });
    expect(found).toEqual([
      {
        path: "tools.0.statement",
        message: 'connector "crm" tool "find": the statement uses :org, which is not declared in parameters',
      },
    ]);
  });

  it("names connector, tool and parameter for a declared parameter the statement never uses", () => {
    const found = issues({
      ...base,
      tools: [tool({ parameters: { id: { type: "integer" }, limit: { type: "integer" } } })],
    });
    expect(found).toEqual([
      {
        path: "tools.0.parameters.limit",
        message:
          'connector "crm" tool "find": parameter "limit" is declared but the statement never uses :limit',
      },
    ]);
  });

  it("does not count :names inside strings or comments as parameters", () => {
    const found = issues({
      ...base,
      tools: [tool({ statement: "SELECT ':nope', x::text FROM c /* :no */ WHERE id = :id -- :never" })],
    });
    expect(found).toEqual([]);
  });

  it("refuses an unknown engine", () => {
    const found = issues({ ...base, engine: "oracle" });
    expect(found.length).toBeGreaterThan(0);
    expect(found[0]!.path).toBe("engine");
  });

  it("refuses a bad url without echoing it (it may carry a password)", () => {
    for (const url of ["mysql://app:Sup3rSecret@db/crm", "not a url Sup3rSecret"]) {
      const found = issues({ ...base, url, tools: [tool({})] });
      expect(found).toHaveLength(1);
      expect(found[0]!.path).toBe("url");
      expect(found[0]!.message).toContain("postgres://");
      expect(found[0]!.message).not.toContain("Sup3rSecret");
    }
  });

  it("refuses unknown keys, a file for a server engine, and a url for SQLite", () => {
    expect(
      issues({ ...base, tools: [tool({})], colour: "blue" })
        .map((i) => i.message)
        .join(),
    ).toMatch(/colour/);
    expect(issues({ ...base, file: "x.db", tools: [tool({})] }).length).toBeGreaterThan(0);
    expect(
      issues({ kind: "sql", name: "l", engine: "sqlite", url: base.url, tools: [tool({})] }).length,
    ).toBeGreaterThan(0);
    expect(
      issues({ ...base, tools: [tool({ parameters: { id: { type: "object" } } })] }).length,
    ).toBeGreaterThan(0);
  });

  it("refuses duplicate tools, a tool named query when the query tool is on, and no tools at all", () => {
    expect(issues({ ...base, tools: [tool({}), tool({})] }).map((i) => i.path)).toContain("tools.1.name");
    expect(
      issues({ ...base, tools: [tool({ name: "query" })], query: { enabled: true } }).map((i) => i.path),
    ).toContain("tools.0.name");
    expect(issues({ ...base }).map((i) => i.path)).toEqual(["tools"]);
  });

  it("refuses positional placeholders, required names that are not parameters, and bad patterns", () => {
    expect(
      issues({ ...base, tools: [tool({ statement: "SELECT * FROM c WHERE id = $1", parameters: {} })] })[0]!
        .message,
    ).toContain("positional placeholder $1");
    expect(issues({ ...base, tools: [tool({ required: ["nope"] })] })[0]!.path).toBe("tools.0.required.0");
    expect(
      issues({ ...base, tools: [tool({ parameters: { id: { type: "string", pattern: "([" } } })] })[0]!.path,
    ).toBe("tools.0.parameters.id.pattern");
  });

  it("create() applies the same checks to a config built in code", async () => {
    const config = {
      ...base,
      engine: "postgres" as const,
      tools: [{ ...tool({}), statement: "SELECT * FROM c WHERE id = :id AND x = :x" }],
    };
    await expect(
      sqlFactory.create(config as never, { baseDir: process.cwd(), logger: testLogger }),
    ).rejects.toMatchObject({ code: "CONFIG_INVALID", message: expect.stringContaining(":x") });
  });

  it("publishes a JSON Schema for each parameter, with nullable and defaults", async () => {
    const config = sqlFactory.configSchema.parse({
      ...base,
      tools: [
        tool({
          statement: "SELECT * FROM c WHERE id = :id AND (:status IS NULL OR status = :status) LIMIT :limit",
          parameters: {
            id: { type: "integer", minimum: 1, description: "Customer id" },
            status: { type: "string", enum: ["open", "closed"], nullable: true },
            limit: { type: "integer", default: 10, maximum: 100 },
          },
          required: ["id"],
        }),
      ],
    });
    const connector = await sqlFactory.create(config, { baseDir: process.cwd(), logger: testLogger });
    try {
      const [find] = connector.tools();
      expect(find!.name).toBe("crm__find");
      expect(find!.inputSchema).toEqual({
        type: "object",
        additionalProperties: false,
        required: ["id"],
        properties: {
          id: { type: "integer", minimum: 1, description: "Customer id" },
          status: { type: ["string", "null"], enum: ["open", "closed", null] },
          limit: { type: "integer", default: 10, maximum: 100 },
        },
      });
      // The url (with its password) never appears in what the gateway publishes or hashes.
      expect(JSON.stringify(connector.tools())).not.toContain("Sup3rSecret");
    } finally {
      await connector.close();
    }
  });
});
