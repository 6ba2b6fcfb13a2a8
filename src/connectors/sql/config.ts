import { z } from "zod";
import { connectorBaseSchema } from "../../core/index.js";
import type { Dialect } from "./lexer.js";
import { StatementError, translateNamed } from "./named-params.js";

export const DEFAULT_MAX_ROWS = 500;
export const DEFAULT_MAX_RESULT_BYTES = 1_048_576;

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** A parameter's JSON Schema, restricted to what can be bound to a SQL placeholder. */
export const sqlParameterSchema = z
  .object({
    type: z
      .enum(["string", "integer", "number", "boolean"])
      .describe("JSON type of the value. Integers beyond 2^53 should be strings with a pattern."),
    description: z.string().optional(),
    nullable: z.boolean().optional().describe("Accept JSON null (bound as SQL NULL)."),
    enum: z.array(scalar).min(1).optional(),
    default: scalar.optional().describe("Bound when the argument is absent."),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    exclusiveMinimum: z.number().optional(),
    exclusiveMaximum: z.number().optional(),
    minLength: z.number().int().nonnegative().optional(),
    maxLength: z.number().int().positive().optional(),
    pattern: z.string().optional().describe("ECMAScript regular expression the string must match."),
    format: z.string().optional().describe("JSON Schema format (date, date-time, email, uuid, ...)."),
    examples: z.array(scalar).optional(),
  })
  .strict();

export const sqlToolSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-zA-Z0-9_-]{1,64}$/, { message: "tool names use letters, digits, '_' and '-'" })
      .describe("Operation name; the MCP tool is `<connector>__<name>`."),
    title: z.string().optional(),
    description: z.string().min(1).describe("What the tool does, for the agent."),
    statement: z
      .string()
      .min(1)
      .describe("One SQL statement with named parameters `:name`; values are always bound, never spliced."),
    parameters: z
      .record(
        z.string().regex(identifier, { message: "parameter names are SQL identifiers" }),
        sqlParameterSchema,
      )
      .optional()
      .describe("Each named parameter's JSON Schema."),
    required: z.array(z.string()).optional().describe("Parameters the agent must pass."),
    readOnly: z.boolean().describe("True when the statement only reads; it then runs read-only."),
    destructive: z.boolean().optional().describe("For writes: may destroy or overwrite data (default true)."),
    idempotent: z
      .boolean()
      .optional()
      .describe("Repeating the call has no further effect (default: readOnly)."),
    maxRows: z.number().int().positive().max(100_000).optional().describe("Row cap for this tool."),
  })
  .strict();

export const sqlQueryToolSchema = z
  .object({
    enabled: z.boolean().describe("Offer `<connector>__query`, a free-form read-only SQL tool."),
    description: z.string().optional(),
    maxRows: z.number().int().positive().max(100_000).optional(),
  })
  .strict();

const poolSchema = z
  .object({
    max: z.number().int().positive().max(100).optional().describe("Most open connections (default 10)."),
    idleTimeoutMs: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe("Close a connection idle this long, in milliseconds (default 30000)."),
    connectTimeoutMs: z
      .number()
      .int()
      .positive()
      .max(120_000)
      .optional()
      .describe("Give up connecting after this many milliseconds (default 5000)."),
  })
  .strict();

const common = connectorBaseSchema.extend({
  kind: z.literal("sql"),
  maxRows: z
    .number()
    .int()
    .positive()
    .max(100_000)
    .optional()
    .describe(`Most rows a result returns (default ${DEFAULT_MAX_ROWS}); more sets truncated: true.`),
  maxResultBytes: z
    .number()
    .int()
    .positive()
    .max(64 * 1_048_576)
    .optional()
    .describe("Most bytes of JSON rows a result returns (default 1048576 = 1 MiB)."),
  tools: z.array(sqlToolSchema).optional().describe("Declared tools, one SQL statement each."),
  query: sqlQueryToolSchema.optional(),
});

const urlField = (protocols: readonly string[]) =>
  z
    .string()
    .min(1)
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      // Never echo the value: it usually carries a password.
      { message: `expected a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}` },
    )
    .describe('Connection URL; keep credentials in an environment variable: "${PG_URL}".');

const sqliteSchema = common
  .extend({
    engine: z.literal("sqlite"),
    file: z
      .string()
      .min(1)
      .refine((f) => f !== ":memory:" && !f.startsWith("file:"), {
        message: "expected a path to a database file (relative to the connectors directory)",
      })
      .describe("Database file, relative to the connectors directory. It must exist."),
    busyTimeoutMs: z
      .number()
      .int()
      .nonnegative()
      .max(600_000)
      .optional()
      .describe("How long a statement waits for a lock held by another writer (default 5000 ms)."),
    processes: z
      .number()
      .int()
      .positive()
      .max(16)
      .optional()
      .describe("Worker processes running statements (default 2); a call that overruns kills its worker."),
  })
  .strict();

const postgresSchema = common
  .extend({
    engine: z.literal("postgres"),
    url: urlField(["postgres:", "postgresql:"]),
    pool: poolSchema.optional(),
  })
  .strict();

const mysqlSchema = common
  .extend({
    engine: z.enum(["mysql", "mariadb"]),
    url: urlField(["mysql:", "mariadb:"]),
    pool: poolSchema.optional(),
  })
  .strict();

export const sqlConfigSchema = z
  .discriminatedUnion("engine", [sqliteSchema, postgresSchema, mysqlSchema])
  .superRefine((config, ctx) => {
    for (const problem of statementProblems(config)) ctx.addIssue({ code: "custom", ...problem });
  });

export type SqlConfig = z.infer<typeof sqlConfigSchema>;
export type SqlToolConfig = z.infer<typeof sqlToolSchema>;
export type SqlParameter = z.infer<typeof sqlParameterSchema>;

export function dialectOf(config: Pick<SqlConfig, "engine">): Dialect {
  return config.engine === "mariadb" ? "mysql" : config.engine;
}

/**
 * Everything about the declared tools that a JSON Schema cannot say: each statement parses,
 * uses exactly the parameters it declares, names are unique. Also run by `create`, so a config
 * built in code gets the same checks as one read from a file.
 */
export function statementProblems(
  config: Pick<SqlConfig, "engine" | "name" | "tools" | "query">,
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const tools = config.tools ?? [];
  const where = (tool: SqlToolConfig) => `connector "${config.name}" tool "${tool.name}"`;
  const seen = new Set<string>();
  if (tools.length === 0 && !config.query?.enabled) {
    problems.push({ path: ["tools"], message: "declare at least one tool or enable the query tool" });
  }
  tools.forEach((tool, i) => {
    if (seen.has(tool.name))
      problems.push({ path: ["tools", i, "name"], message: `duplicate tool name "${tool.name}"` });
    seen.add(tool.name);
    if (tool.name === "query" && config.query?.enabled) {
      problems.push({
        path: ["tools", i, "name"],
        message: `${where(tool)}: "query" is the name of the enabled free-form query tool`,
      });
    }
    const declared = tool.parameters ?? {};
    let used: ReadonlySet<string>;
    try {
      used = translateNamed(tool.statement, dialectOf(config)).used;
    } catch (err) {
      const message = err instanceof StatementError ? err.message : String(err);
      problems.push({ path: ["tools", i, "statement"], message: `${where(tool)}: ${message}` });
      return;
    }
    for (const name of used) {
      if (!Object.hasOwn(declared, name)) {
        problems.push({
          path: ["tools", i, "statement"],
          message: `${where(tool)}: the statement uses :${name}, which is not declared in parameters`,
        });
      }
    }
    for (const [name, param] of Object.entries(declared)) {
      if (!used.has(name)) {
        problems.push({
          path: ["tools", i, "parameters", name],
          message: `${where(tool)}: parameter "${name}" is declared but the statement never uses :${name}`,
        });
      }
      if (param.pattern !== undefined) {
        try {
          new RegExp(param.pattern, "u");
        } catch {
          problems.push({
            path: ["tools", i, "parameters", name, "pattern"],
            message: `${where(tool)}: parameter "${name}" has an invalid regular expression`,
          });
        }
      }
    }
    (tool.required ?? []).forEach((name, j) => {
      if (!Object.hasOwn(declared, name)) {
        problems.push({
          path: ["tools", i, "required", j],
          message: `${where(tool)}: required parameter "${name}" is not declared in parameters`,
        });
      }
    });
    if (tool.readOnly && tool.destructive === true) {
      problems.push({
        path: ["tools", i, "destructive"],
        message: `${where(tool)}: a read-only tool cannot be destructive`,
      });
    }
  });
  return problems;
}
