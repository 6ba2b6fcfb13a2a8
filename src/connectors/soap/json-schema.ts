import type { JsonSchema, ObjectJsonSchema } from "../../core/index.js";
import type { ComplexShape, Field, Shape, SimpleShape } from "./xsd-model.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** xsd:decimal's lexical space, exactly: decimals travel as strings so no digit is lost. */
export const DECIMAL_PATTERN = "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)$";
const HEX_PATTERN = "^(?:[0-9a-fA-F]{2})*$";

function decimalPattern(s: SimpleShape): string {
  if (s.fractionDigits === undefined) return DECIMAL_PATTERN;
  if (s.fractionDigits === 0) return "^[+-]?[0-9]+$";
  const f = s.fractionDigits;
  return `^[+-]?(?:[0-9]+(?:\\.[0-9]{0,${f}})?|\\.[0-9]{1,${f}})$`;
}

function clampSafe(v: bigint | undefined, fallback: bigint): number {
  if (v === undefined) return Number(fallback);
  if (v > MAX_SAFE) return Number(MAX_SAFE);
  if (v < -MAX_SAFE) return -Number(MAX_SAFE);
  return Number(v);
}

function numericBounds(s: SimpleShape): JsonSchema {
  const out: JsonSchema = {};
  if (s.minimum !== undefined && Number.isFinite(Number(s.minimum))) out.minimum = Number(s.minimum);
  if (s.maximum !== undefined && Number.isFinite(Number(s.maximum))) out.maximum = Number(s.maximum);
  if (s.exclusiveMinimum !== undefined && Number.isFinite(Number(s.exclusiveMinimum)))
    out.exclusiveMinimum = Number(s.exclusiveMinimum);
  if (s.exclusiveMaximum !== undefined && Number.isFinite(Number(s.exclusiveMaximum)))
    out.exclusiveMaximum = Number(s.exclusiveMaximum);
  return out;
}

function stringFacets(s: SimpleShape): JsonSchema {
  const out: JsonSchema = {};
  if (s.pattern !== undefined) out.pattern = s.pattern;
  if (s.minLength !== undefined) out.minLength = s.minLength;
  if (s.maxLength !== undefined) out.maxLength = s.maxLength;
  return out;
}

/** The JSON Schema of one value (a list's item when `s.list`), without description. */
function simpleItem(s: SimpleShape): JsonSchema {
  switch (s.primitive) {
    case "boolean":
      return { type: "boolean" };
    case "int":
      return s.enum
        ? { type: "integer", enum: s.enum.map(Number) }
        : { type: "integer", minimum: Number(s.min), maximum: Number(s.max) };
    case "bigint": {
      if (s.enum) return { type: "string", enum: [...s.enum] };
      const unsigned = s.min !== undefined && s.min >= 0n;
      return {
        anyOf: [
          { type: "integer", minimum: clampSafe(s.min, -MAX_SAFE), maximum: clampSafe(s.max, MAX_SAFE) },
          { type: "string", pattern: unsigned ? "^\\+?[0-9]+$" : "^[+-]?[0-9]+$" },
        ],
      };
    }
    case "float":
      return s.enum ? { type: "number", enum: s.enum.map(Number) } : { type: "number", ...numericBounds(s) };
    case "decimal":
      return s.enum ? { type: "string", enum: [...s.enum] } : { type: "string", pattern: decimalPattern(s) };
    case "date":
      return { type: "string", format: "date", ...(s.enum ? { enum: [...s.enum] } : {}) };
    case "dateTime":
      return { type: "string", format: "date-time", ...(s.enum ? { enum: [...s.enum] } : {}) };
    case "time":
      return { type: "string", format: "time", ...(s.enum ? { enum: [...s.enum] } : {}) };
    case "duration":
      return { type: "string", format: "duration", ...(s.enum ? { enum: [...s.enum] } : {}) };
    case "base64":
      return { type: "string", contentEncoding: "base64", ...stringFacets(s) };
    case "hex":
      return { type: "string", pattern: HEX_PATTERN };
    case "string":
    case "any":
      return s.enum ? { type: "string", enum: [...s.enum] } : { type: "string", ...stringFacets(s) };
  }
}

export function simpleSchema(s: SimpleShape): JsonSchema {
  const item = simpleItem(s);
  const schema: JsonSchema = s.list ? { type: "array", items: item } : item;
  return s.doc ? { description: s.doc, ...schema } : schema;
}

function withNull(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = { ...schema };
  if (typeof out.type === "string") out.type = [out.type, "null"];
  if (Array.isArray(out.enum)) out.enum = [...(out.enum as unknown[]), null];
  if (Array.isArray(out.anyOf)) out.anyOf = [...(out.anyOf as JsonSchema[]), { type: "null" }];
  return out;
}

/** Typed `default` / `const` from the schema's lexical value; undefined if it does not parse. */
function typedValue(shape: Shape, lexical: string): unknown {
  if (shape.kind !== "simple" || shape.list) return undefined;
  switch (shape.primitive) {
    case "boolean":
      return lexical === "true" || lexical === "1"
        ? true
        : lexical === "false" || lexical === "0"
          ? false
          : undefined;
    case "int":
    case "float": {
      const n = Number(lexical);
      return lexical.trim() !== "" && Number.isFinite(n) ? n : undefined;
    }
    case "bigint":
      return /^[+-]?\d+$/.test(lexical) && BigInt(lexical) <= MAX_SAFE && BigInt(lexical) >= -MAX_SAFE
        ? Number(lexical)
        : lexical;
    default:
      return lexical;
  }
}

function fieldSchema(f: Field): JsonSchema | undefined {
  if (f.shape.kind === "cut") {
    // Optional recursion is simply not offered; a required one can only be sent empty.
    if (f.min === 0) return undefined;
    return {
      type: "object",
      description: `${f.shape.typeName}: nested too deeply to expand here; send {}`,
      properties: {},
      additionalProperties: false,
    };
  }
  let schema = f.shape.kind === "simple" ? simpleSchema(f.shape) : complexSchema(f.shape);
  const { description: _typeDoc, ...rest } = schema;
  schema = rest;
  if (f.nillable) schema = withNull(schema);
  if (f.default !== undefined) {
    const v = typedValue(f.shape, f.default);
    if (v !== undefined) schema.default = v;
  }
  if (f.fixed !== undefined) {
    const v = typedValue(f.shape, f.fixed);
    if (v !== undefined) schema.const = v;
  }
  if (f.max > 1) {
    schema = {
      type: "array",
      items: schema,
      ...(f.min > 0 ? { minItems: f.min } : {}),
      ...(Number.isFinite(f.max) ? { maxItems: f.max } : {}),
    };
  }
  return f.doc ? { description: f.doc, ...schema } : schema;
}

export function complexSchema(c: ComplexShape): ObjectJsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const a of c.attrs) {
    let s = simpleSchema(a.shape);
    const { description: _d, ...rest } = s;
    s = rest;
    if (a.default !== undefined) {
      const v = typedValue(a.shape, a.default);
      if (v !== undefined) s.default = v;
    }
    if (a.fixed !== undefined) {
      const v = typedValue(a.shape, a.fixed);
      if (v !== undefined) s.const = v;
    }
    properties[a.prop] = a.doc ? { description: a.doc, ...s } : s;
    if (a.required) required.push(a.prop);
  }
  if (c.text) {
    properties[c.text.prop] = simpleSchema(c.text.shape);
    required.push(c.text.prop);
  }
  for (const f of c.fields) {
    const s = fieldSchema(f);
    if (!s) continue;
    properties[f.prop] = s;
    if (f.min > 0) required.push(f.prop);
  }
  return {
    type: "object",
    ...(c.doc ? { description: c.doc } : {}),
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

/** The input schema of a message whose parts are `roots` (see MessageModel). */
export function messageSchema(roots: readonly Field[], unwrap: boolean): ObjectJsonSchema {
  if (unwrap && roots[0]?.shape.kind === "complex") {
    const schema = complexSchema(roots[0].shape);
    // The tool's own description already says what the operation does.
    const { description: _d, ...rest } = schema;
    return rest as ObjectJsonSchema;
  }
  return complexSchema({ kind: "complex", fields: roots, attrs: [] });
}
