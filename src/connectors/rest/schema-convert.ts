import { isPlainObject, type JsonSchema } from "../../core/index.js";

export interface ConvertOptions {
  /** Input schemas drop readOnly properties, output schemas drop writeOnly ones. */
  mode: "input" | "output";
  version: "2.0" | "3.0" | "3.1";
}

/** Deeper than this, a schema is cut to `{}`: agents gain nothing from it and clients choke on it. */
const MAX_DEPTH = 24;
/** Per converted schema; bounds the blow-up of heavily shared (but acyclic) component graphs. */
const MAX_NODES = 20_000;

/** Keywords that are OpenAPI vocabulary, not JSON Schema, or that would break a standalone schema. */
const DROPPED = new Set([
  "discriminator",
  "xml",
  "externalDocs",
  "example",
  "nullable",
  "$schema",
  "$id",
  "$ref",
  "$anchor",
  "$dynamicAnchor",
  "$dynamicRef",
  "$defs",
  "definitions",
  "collectionFormat",
]);

const SCHEMA_MAPS = ["properties", "patternProperties", "dependentSchemas"];
const SCHEMA_ARRAYS = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SCHEMA_SINGLES = [
  "additionalProperties",
  "not",
  "contains",
  "if",
  "then",
  "else",
  "propertyNames",
  "unevaluatedProperties",
  "unevaluatedItems",
  "additionalItems",
];

/**
 * Turns a dereferenced OpenAPI schema (2.0, 3.0 or 3.1; possibly with object cycles) into a
 * self-contained JSON Schema that Ajv 2020 and MCP clients accept: `nullable` becomes a type
 * union, boolean exclusive bounds become numeric, OpenAPI-only keywords go, and recursion is cut
 * where it repeats (so a `Node { children: Node[] }` schema stays finite).
 */
export function toJsonSchema(schema: unknown, opts: ConvertOptions): JsonSchema {
  const state = { nodes: 0 };
  return convert(schema, opts, [], state);
}

function convert(
  schema: unknown,
  opts: ConvertOptions,
  ancestors: object[],
  state: { nodes: number },
): JsonSchema {
  if (schema === true || schema === undefined) return {};
  if (schema === false) return { not: {} };
  if (!isPlainObject(schema)) return {};
  state.nodes++;
  if (ancestors.includes(schema)) return recursionStub(schema);
  if (ancestors.length >= MAX_DEPTH || state.nodes > MAX_NODES) {
    return { description: "Nested structure not expanded further." };
  }
  const path = [...ancestors, schema];
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED.has(key) || key.startsWith("x-")) continue;
    if (SCHEMA_MAPS.includes(key) && isPlainObject(value)) {
      const map: Record<string, JsonSchema> = {};
      for (const [name, sub] of Object.entries(value)) {
        if (key === "properties" && hiddenInMode(sub, opts)) continue;
        map[name] = convert(sub, opts, path, state);
      }
      out[key] = map;
    } else if (SCHEMA_ARRAYS.includes(key) && Array.isArray(value)) {
      out[key] = value.map((sub) => convert(sub, opts, path, state));
    } else if (SCHEMA_SINGLES.includes(key) && (isPlainObject(value) || typeof value === "boolean")) {
      out[key] = typeof value === "boolean" ? value : convert(value, opts, path, state);
    } else if (key === "items") {
      // Draft-04 tuple form (`items: [...]`) is `prefixItems` in 2020-12.
      if (Array.isArray(value)) out.prefixItems = value.map((sub) => convert(sub, opts, path, state));
      else out.items = typeof value === "boolean" ? value : convert(value, opts, path, state);
    } else if (key === "required" && Array.isArray(value)) {
      out.required = value.filter(
        (name): name is string =>
          typeof name === "string" &&
          !hiddenInMode(isPlainObject(schema.properties) ? schema.properties[name] : undefined, opts),
      );
      if ((out.required as string[]).length === 0) delete out.required;
    } else if ((key === "exclusiveMinimum" || key === "exclusiveMaximum") && typeof value === "boolean") {
      const bound = key === "exclusiveMinimum" ? schema.minimum : schema.maximum;
      if (value && typeof bound === "number") out[key] = bound;
    } else if (key === "type" && value === "file") {
      out.type = "string";
      if (opts.mode === "input") out.contentEncoding = "base64";
    } else {
      out[key] = value;
    }
  }
  // Numeric exclusive bounds replace the inclusive ones they were attached to.
  if (typeof out.exclusiveMinimum === "number" && schema.exclusiveMinimum === true) delete out.minimum;
  if (typeof out.exclusiveMaximum === "number" && schema.exclusiveMaximum === true) delete out.maximum;
  if (schema.nullable === true || schema["x-nullable"] === true) makeNullable(out);
  if (schema.example !== undefined && out.examples === undefined && opts.version !== "3.1") {
    out.examples = [schema.example];
  }
  return out;
}

function hiddenInMode(sub: unknown, opts: ConvertOptions): boolean {
  if (!isPlainObject(sub)) return false;
  return opts.mode === "input" ? sub.readOnly === true : sub.writeOnly === true;
}

function makeNullable(out: JsonSchema): void {
  const t = out.type;
  if (typeof t === "string") out.type = [t, "null"];
  else if (Array.isArray(t) && !t.includes("null")) out.type = [...(t as unknown[]), "null"];
  if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...(out.enum as unknown[]), null];
}

function recursionStub(schema: Record<string, unknown>): JsonSchema {
  const stub: JsonSchema = {};
  if (typeof schema.type === "string" || Array.isArray(schema.type)) stub.type = schema.type;
  const name = typeof schema.title === "string" ? ` (${schema.title})` : "";
  stub.description = `Recursive structure${name}: same shape as its enclosing object.`;
  return stub;
}

/** The JSON Schema type(s) a converted schema allows at its top level, when it says. */
export function topLevelTypes(schema: JsonSchema): string[] | undefined {
  const t = schema.type;
  if (typeof t === "string") return [t];
  if (Array.isArray(t)) return t.filter((x): x is string => typeof x === "string");
  if (isPlainObject(schema.properties)) return ["object"];
  return undefined;
}
