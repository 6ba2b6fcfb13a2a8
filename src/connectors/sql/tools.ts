import {
  GatewayError,
  toolName,
  type JsonSchema,
  type ObjectJsonSchema,
  type ToolDefinition,
} from "../../core/index.js";
import type { SqlConfig, SqlParameter, SqlToolConfig } from "./config.js";
import type { Dialect } from "./lexer.js";
import { translateNamed, type TranslatedStatement } from "./named-params.js";

export const QUERY_OPERATION = "query";
export const QUERY_SQL_MAX_LENGTH = 100_000;
export const QUERY_MAX_PARAMS = 1_000;

/** A declared tool, ready to run: its definition plus the engine-native statement. */
export interface PreparedTool {
  readonly definition: ToolDefinition;
  readonly config: SqlToolConfig;
  readonly statement: TranslatedStatement;
}

const rowsOutputSchema: ObjectJsonSchema = {
  type: "object",
  properties: {
    rows: { type: "array", items: { type: "object" } },
    rowCount: { type: "integer", minimum: 0 },
    truncated: { type: "boolean" },
    columns: {
      type: "array",
      items: { type: "object", properties: { name: { type: "string" }, type: { type: "string" } } },
    },
    rowsAffected: { type: "integer", minimum: 0 },
  },
  required: ["rows", "rowCount", "truncated"],
};

const writeOutputSchema: ObjectJsonSchema = {
  type: "object",
  properties: {
    rowsAffected: { type: "integer", minimum: 0 },
    lastInsertId: { type: ["integer", "string"] },
    rows: { type: "array", items: { type: "object" } },
    rowCount: { type: "integer", minimum: 0 },
    truncated: { type: "boolean" },
  },
};

function parameterJsonSchema(p: SqlParameter): JsonSchema {
  const { nullable, ...rest } = p;
  const schema: JsonSchema = { ...rest };
  if (nullable) {
    schema.type = [p.type, "null"];
    if (p.enum) schema.enum = [...p.enum, null];
  }
  return schema;
}

export function engineLabel(config: Pick<SqlConfig, "name" | "engine">): string {
  return `connector "${config.name}" (sql, ${config.engine})`;
}

export function declaredTool(config: SqlConfig, tool: SqlToolConfig, dialect: Dialect): PreparedTool {
  const params = tool.parameters ?? {};
  const properties: Record<string, JsonSchema> = {};
  for (const [name, p] of Object.entries(params)) properties[name] = parameterJsonSchema(p);
  const inputSchema: ObjectJsonSchema = { type: "object", properties, additionalProperties: false };
  if (tool.required && tool.required.length > 0) inputSchema.required = [...tool.required];
  const readOnly = tool.readOnly;
  const definition: ToolDefinition = {
    name: toolName(config.name, tool.name),
    connector: config.name,
    operation: tool.name,
    ...(tool.title === undefined ? {} : { title: tool.title }),
    description: tool.description,
    inputSchema,
    outputSchema: readOnly ? rowsOutputSchema : writeOutputSchema,
    annotations: {
      ...(tool.title === undefined ? {} : { title: tool.title }),
      readOnlyHint: readOnly,
      destructiveHint: readOnly ? false : (tool.destructive ?? true),
      idempotentHint: tool.idempotent ?? readOnly,
      openWorldHint: false,
    },
    upstream: `${config.engine}: ${tool.statement}`,
  };
  return { definition, config: tool, statement: translateNamed(tool.statement, dialect) };
}

const PLACEHOLDER_HINT: Record<Dialect, string> = {
  sqlite: "? placeholders",
  mysql: "? placeholders",
  postgres: "$1, $2, ... placeholders",
};

export function queryTool(config: SqlConfig, dialect: Dialect): ToolDefinition {
  const description =
    config.query?.description ??
    `Run one read-only SQL query (${config.engine} dialect) against the "${config.name}" database. ` +
      `Pass values in params and refer to them with ${PLACEHOLDER_HINT[dialect]}; never inline them. ` +
      `Results are capped (truncated: true when rows were left out).`;
  return {
    name: toolName(config.name, QUERY_OPERATION),
    connector: config.name,
    operation: QUERY_OPERATION,
    description,
    inputSchema: {
      type: "object",
      properties: {
        sql: {
          type: "string",
          minLength: 1,
          maxLength: QUERY_SQL_MAX_LENGTH,
          description: "One SELECT (or WITH ... SELECT) statement.",
        },
        params: {
          type: "array",
          maxItems: QUERY_MAX_PARAMS,
          items: { type: ["string", "number", "boolean", "null"] },
          description: `Values bound to the ${PLACEHOLDER_HINT[dialect]}, in order.`,
        },
      },
      required: ["sql"],
      additionalProperties: false,
    },
    outputSchema: rowsOutputSchema,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    upstream: `${config.engine}: <free-form read-only query>`,
  };
}

function invalid(label: string, tool: string, message: string): GatewayError {
  return new GatewayError("INVALID_ARGUMENTS", `${label} tool "${tool}": ${message}`);
}

function checkType(value: unknown, p: SqlParameter): boolean {
  switch (p.type) {
    case "string":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
    case "integer":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
  }
}

/**
 * Binds validated arguments to the statement's placeholders. The gateway has validated them
 * against the input schema already; this re-checks the types so that nothing but a scalar can
 * ever reach a driver, whoever calls the connector.
 */
export function bindArguments(
  label: string,
  tool: PreparedTool,
  args: Readonly<Record<string, unknown>>,
  dialect: Dialect,
): unknown[] {
  const params = tool.config.parameters ?? {};
  for (const key of Object.keys(args)) {
    if (!Object.hasOwn(params, key)) throw invalid(label, tool.config.name, `unknown argument "${key}"`);
  }
  const required = new Set(tool.config.required ?? []);
  const values = new Map<string, unknown>();
  for (const [name, p] of Object.entries(params)) {
    let value = Object.hasOwn(args, name) ? args[name] : undefined;
    if (value === undefined) {
      if (required.has(name)) throw invalid(label, tool.config.name, `missing required argument "${name}"`);
      value = p.default ?? null;
    }
    if (value === null) {
      if (Object.hasOwn(args, name) && args[name] === null && !p.nullable) {
        throw invalid(label, tool.config.name, `argument "${name}" must not be null`);
      }
    } else if (!checkType(value, p)) {
      throw invalid(
        label,
        tool.config.name,
        `argument "${name}" must be ${p.type === "integer" ? "an" : "a"} ${p.type}`,
      );
    } else if (p.enum && !p.enum.includes(value as string | number | boolean)) {
      throw invalid(label, tool.config.name, `argument "${name}" must be one of the allowed values`);
    }
    values.set(name, toDriverValue(value, dialect));
  }
  return tool.statement.order.map((name) => values.get(name) ?? null);
}

/** Free-form query params: scalars only, converted for the driver. */
export function bindQueryParams(label: string, raw: unknown, dialect: Dialect): unknown[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid(label, QUERY_OPERATION, `"params" must be an array`);
  if (raw.length > QUERY_MAX_PARAMS)
    throw invalid(label, QUERY_OPERATION, `at most ${QUERY_MAX_PARAMS} params`);
  return raw.map((v, i) => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return toDriverValue(v, dialect);
    if (typeof v === "number" && Number.isFinite(v)) return v;
    throw invalid(label, QUERY_OPERATION, `params[${i}] must be a string, number, boolean or null`);
  });
}

function toDriverValue(value: unknown, dialect: Dialect): unknown {
  // better-sqlite3 cannot bind booleans; SQLite itself stores them as 0/1.
  if (typeof value === "boolean" && dialect === "sqlite") return value ? 1 : 0;
  return value;
}
