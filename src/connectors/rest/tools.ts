import { createHash } from "node:crypto";
import {
  GatewayError,
  sanitizeName,
  TOOL_NAME_MAX,
  toolName,
  type JsonSchema,
  type ObjectJsonSchema,
  type ToolAnnotations,
  type ToolDefinition,
} from "../../core/index.js";
import type { ToolOverride } from "./config.js";
import type { BodySpec, OperationSpec, ParamSpec } from "./operations.js";
import { topLevelTypes } from "./schema-convert.js";

/** One argument of the tool and where it goes in the request. */
export interface ArgBinding {
  arg: string;
  param: ParamSpec;
}

/** Everything invoke() needs about one tool, fixed at load time. */
export interface BoundTool {
  definition: ToolDefinition;
  op: OperationSpec;
  params: ArgBinding[];
  /** Argument that carries the request body, when the operation has one. */
  bodyArg?: string;
  body?: BodySpec;
  idempotent: boolean;
  /** Non-object JSON results are returned as `{ result: value }` (MCP requires an object). */
  wrapResult: boolean;
  project?: string[];
  maxResultBytes?: number;
  /** Response schema to check results against (the published outputSchema, minus `_truncated`). */
  validateAgainst?: JsonSchema;
}

const IDEMPOTENT = new Set(["get", "head", "options", "put", "delete", "trace"]);
const READ_ONLY = new Set(["get", "head", "options", "trace"]);
const MAX_DESCRIPTION = 2_000;

export const TRUNCATION_PROPERTY = "_truncated";
const truncationSchema: JsonSchema = {
  type: "object",
  description: "Present only when the gateway shortened the result to fit its size limit.",
  properties: {
    omittedItems: { type: "integer" },
    originalBytes: { type: "integer" },
    limitBytes: { type: "integer" },
  },
};

export interface BuildToolsOptions {
  connector: string;
  baseUrl: string;
  overrides: Record<string, ToolOverride>;
  validateResponses: boolean;
  /** Lower-cased header names (or query/cookie names) the connector's auth owns: agents cannot set them. */
  reservedParams: { header: Set<string>; query: Set<string>; cookie: Set<string> };
}

export function buildTools(ops: readonly OperationSpec[], opts: BuildToolsOptions): BoundTool[] {
  const names = assignNames(opts.connector, ops);
  return ops.map((op, i) => buildTool(op, names[i]!, opts));
}

/**
 * Names come from toolName(); operations whose names collide (e.g. `list.orders` and
 * `list_orders`) all get a suffix hashed from method + path, so a name never depends on the
 * order operations appear in the spec.
 */
function assignNames(connector: string, ops: readonly OperationSpec[]): string[] {
  const base = ops.map((op) => toolName(connector, operationPart(op)));
  const counts = new Map<string, number>();
  for (const n of base) counts.set(n, (counts.get(n) ?? 0) + 1);
  const names = base.map((n, i) => {
    if (counts.get(n) === 1) return n;
    const op = ops[i]!;
    const suffix = createHash("sha256")
      .update(`${op.method.toUpperCase()} ${op.path}`)
      .digest("hex")
      .slice(0, 8);
    const stem = `${connector}__${sanitizeName(operationPart(op)) || "op"}`;
    return `${stem.slice(0, TOOL_NAME_MAX - suffix.length - 1)}_${suffix}`;
  });
  const seen = new Map<string, OperationSpec>();
  names.forEach((n, i) => {
    const other = seen.get(n);
    if (other) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `connector "${connector}" (rest): operations "${other.handle}" and "${ops[i]!.handle}" map to the same tool name ${n}`,
      );
    }
    seen.set(n, ops[i]!);
  });
  return names;
}

/** operationId, else `get_orders_orderId` for GET /orders/{orderId} (no `__`: that separates the connector). */
function operationPart(op: OperationSpec): string {
  if (op.operationId !== undefined) return op.operationId;
  const segments = op.path
    .split("/")
    .map((s) => sanitizeName(s.replace(/[{}]/g, "")))
    .filter((s) => s !== "");
  return [op.method, ...segments].join("_");
}

function buildTool(op: OperationSpec, name: string, opts: BuildToolsOptions): BoundTool {
  const override = opts.overrides[op.handle] ?? {};
  const params = op.params.filter((p) => !isReserved(p, opts.reservedParams));
  const { properties, required, bindings, bodyArg } = mergeInputs(params, op.body);
  const inputSchema: ObjectJsonSchema = {
    type: "object",
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };

  const idempotent = override.idempotent ?? op.xIdempotent ?? IDEMPOTENT.has(op.method);
  const readOnly = READ_ONLY.has(op.method);
  const annotations: ToolAnnotations = {
    ...(op.summary ? { title: op.summary } : {}),
    readOnlyHint: readOnly,
    destructiveHint: op.method === "delete",
    idempotentHint: idempotent,
    openWorldHint: true,
  };

  let outputSchema: ObjectJsonSchema | undefined;
  let validateAgainst: JsonSchema | undefined;
  let wrapResult = true;
  if (op.responseSchema !== undefined && override.project === undefined) {
    const isObject = isObjectSchema(op.responseSchema);
    wrapResult = !isObject;
    validateAgainst = isObject
      ? { ...op.responseSchema, type: "object" }
      : { type: "object", properties: { result: op.responseSchema }, required: ["result"] };
    if (opts.validateResponses) outputSchema = withTruncationMarker(validateAgainst);
    else validateAgainst = undefined;
  }

  const definition: ToolDefinition = {
    name,
    connector: opts.connector,
    operation: op.handle,
    ...(op.summary ? { title: op.summary } : {}),
    description: describe(op, override),
    inputSchema,
    ...(outputSchema ? { outputSchema } : {}),
    annotations,
    upstream: `${op.method.toUpperCase()} ${opts.baseUrl.replace(/\/$/, "")}${op.path}`,
  };
  return {
    definition,
    op,
    params: bindings,
    ...(bodyArg === undefined || op.body === undefined ? {} : { bodyArg, body: op.body }),
    idempotent,
    wrapResult,
    ...(override.project ? { project: override.project } : {}),
    ...(override.maxResultBytes ? { maxResultBytes: override.maxResultBytes } : {}),
    ...(validateAgainst ? { validateAgainst } : {}),
  };
}

function isReserved(p: ParamSpec, reserved: BuildToolsOptions["reservedParams"]): boolean {
  if (p.in === "header") return reserved.header.has(p.name.toLowerCase());
  if (p.in === "query") return reserved.query.has(p.name);
  if (p.in === "cookie") return reserved.cookie.has(p.name);
  return false;
}

/**
 * Parameters keep their own names; only names used in more than one location (or named `body`
 * while there is a body) are namespaced as `<location>_<name>`, e.g. `path_id` and `query_id`.
 */
function mergeInputs(params: readonly ParamSpec[], body: BodySpec | undefined) {
  const counts = new Map<string, number>();
  for (const p of params) counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
  if (body) counts.set("body", (counts.get("body") ?? 0) + 1);
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  const bindings: ArgBinding[] = [];
  const taken = new Set<string>();
  const unique = (wanted: string): string => {
    let n = wanted;
    for (let i = 2; taken.has(n); i++) n = `${wanted}_${i}`;
    taken.add(n);
    return n;
  };
  let bodyArg: string | undefined;
  if (body) bodyArg = unique("body");
  for (const p of params) {
    const arg = unique((counts.get(p.name) ?? 0) > 1 ? `${p.in}_${p.name}` : p.name);
    const schema: JsonSchema = { ...p.schema };
    if (p.description && schema.description === undefined) schema.description = p.description;
    if (arg !== p.name) {
      const where = `${p.in} parameter "${p.name}"`;
      schema.description = schema.description ? `${where}: ${String(schema.description)}` : where;
    }
    properties[arg] = schema;
    if (p.required) required.push(arg);
    bindings.push({ arg, param: p });
  }
  if (body && bodyArg) {
    const schema: JsonSchema = { ...body.schema };
    if (body.description && schema.description === undefined) schema.description = body.description;
    properties[bodyArg] = schema;
    if (body.required) required.push(bodyArg);
  }
  return { properties, required, bindings, bodyArg };
}

function isObjectSchema(schema: JsonSchema): boolean {
  const types = topLevelTypes(schema);
  if (types) return types.length === 1 && types[0] === "object";
  const parts = Array.isArray(schema.allOf) ? (schema.allOf as JsonSchema[]) : undefined;
  return parts !== undefined && parts.length > 0 && parts.every((p) => isObjectSchema(p));
}

function withTruncationMarker(schema: JsonSchema): ObjectJsonSchema {
  const properties = { ...((schema.properties as Record<string, JsonSchema> | undefined) ?? {}) };
  if (properties[TRUNCATION_PROPERTY] === undefined) properties[TRUNCATION_PROPERTY] = truncationSchema;
  return { ...schema, type: "object", properties };
}

function describe(op: OperationSpec, override: ToolOverride): string {
  const parts: string[] = [];
  if (override.description) parts.push(override.description);
  else {
    if (op.summary) parts.push(op.summary);
    if (op.description && op.description !== op.summary) parts.push(op.description);
  }
  if (parts.length === 0) parts.push(`${op.method.toUpperCase()} ${op.path}`);
  if (op.deprecated) parts.push("Deprecated by the API owner.");
  const text = parts.join("\n\n");
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}
