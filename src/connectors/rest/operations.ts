import { isPlainObject, type JsonSchema } from "../../core/index.js";
import { httpMethods, type HttpMethod, type OperationSelector } from "./config.js";
import { toJsonSchema } from "./schema-convert.js";
import type { LoadedSpec } from "./spec-loader.js";

export type ParamLocation = "path" | "query" | "header" | "cookie";

export interface ParamSpec {
  name: string;
  in: ParamLocation;
  required: boolean;
  description?: string;
  schema: JsonSchema;
  /** OpenAPI 3 style (form, simple, spaceDelimited, pipeDelimited, deepObject, label, matrix). */
  style: string;
  explode: boolean;
  /** Swagger 2.0 array serialisation (csv, ssv, tsv, pipes, multi). */
  collectionFormat?: string;
}

export type BodyEncoding = "json" | "form" | "multipart" | "text" | "binary";

export interface BodySpec {
  mediaType: string;
  encoding: BodyEncoding;
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

export interface OperationSpec {
  method: HttpMethod;
  path: string;
  operationId?: string;
  /** operationId, or `METHOD /path`: how config (include/exclude/tools) names the operation. */
  handle: string;
  summary?: string;
  description?: string;
  tags: string[];
  deprecated: boolean;
  params: ParamSpec[];
  body?: BodySpec;
  /** Converted JSON schema of the 2xx JSON response, when the spec declares one. */
  responseSchema?: JsonSchema;
  xMcp?: boolean;
  xIdempotent?: boolean;
}

/** Per RFC 9110 and OpenAPI 3 ("Accept, Content-Type and Authorization ... SHALL be ignored"). */
const IGNORED_HEADERS = new Set([
  "accept",
  "content-type",
  "authorization",
  "cookie",
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-authorization",
  "proxy-connection",
  "traceparent",
]);

export function extractOperations(spec: LoadedSpec): OperationSpec[] {
  const doc = spec.document;
  const ops: OperationSpec[] = [];
  const paths = isPlainObject(doc.paths) ? doc.paths : {};
  for (const [path, item] of Object.entries(paths)) {
    if (!isPlainObject(item) || !path.startsWith("/")) continue;
    const shared = Array.isArray(item.parameters) ? item.parameters : [];
    for (const method of httpMethods) {
      const op = item[method];
      if (!isPlainObject(op)) continue;
      ops.push(buildOperation(spec, path, method, op, shared));
    }
  }
  return ops;
}

function buildOperation(
  spec: LoadedSpec,
  path: string,
  method: HttpMethod,
  op: Record<string, unknown>,
  shared: unknown[],
): OperationSpec {
  const v2 = spec.version === "2.0";
  const operationId =
    typeof op.operationId === "string" && op.operationId !== "" ? op.operationId : undefined;
  // Operation-level parameters override path-level ones with the same name and location.
  const merged = new Map<string, Record<string, unknown>>();
  for (const p of [...shared, ...(Array.isArray(op.parameters) ? op.parameters : [])]) {
    if (isPlainObject(p) && typeof p.name === "string" && typeof p.in === "string")
      merged.set(`${p.in}:${p.name}`, p);
  }
  const params: ParamSpec[] = [];
  let body: BodySpec | undefined;
  const formFields: Record<string, unknown>[] = [];
  for (const p of merged.values()) {
    const location = p.in as string;
    if (location === "body") {
      body = {
        mediaType: pickV2Consumes(spec, op, "json"),
        encoding: "json",
        required: p.required === true,
        ...(typeof p.description === "string" ? { description: p.description } : {}),
        schema: toJsonSchema(p.schema, { mode: "input", version: spec.version }),
      };
      continue;
    }
    if (location === "formData") {
      formFields.push(p);
      continue;
    }
    if (!["path", "query", "header", "cookie"].includes(location)) continue;
    if (location === "header" && IGNORED_HEADERS.has((p.name as string).toLowerCase())) continue;
    params.push(buildParam(spec, p, location as ParamLocation));
  }
  if (v2 && formFields.length > 0 && body === undefined) body = buildV2FormBody(spec, op, formFields);
  if (!v2 && isPlainObject(op.requestBody)) body = buildV3Body(spec, op.requestBody);

  const summary = typeof op.summary === "string" ? op.summary.trim() : undefined;
  const description = typeof op.description === "string" ? op.description.trim() : undefined;
  const responseSchema = pickResponseSchema(spec, op);
  return {
    method,
    path,
    ...(operationId === undefined ? {} : { operationId }),
    handle: operationId ?? `${method.toUpperCase()} ${path}`,
    ...(summary ? { summary } : {}),
    ...(description ? { description } : {}),
    tags: Array.isArray(op.tags) ? op.tags.filter((t): t is string => typeof t === "string") : [],
    deprecated: op.deprecated === true,
    params,
    ...(body === undefined ? {} : { body }),
    ...(responseSchema === undefined ? {} : { responseSchema }),
    ...(typeof op["x-mcp"] === "boolean" ? { xMcp: op["x-mcp"] } : {}),
    ...(typeof op["x-idempotent"] === "boolean" ? { xIdempotent: op["x-idempotent"] } : {}),
  };
}

function buildParam(spec: LoadedSpec, p: Record<string, unknown>, location: ParamLocation): ParamSpec {
  let schema: JsonSchema;
  if (spec.version === "2.0") {
    // Swagger 2.0 puts type/format/enum/items directly on the parameter.
    const { name: _n, in: _i, required: _r, description: _d, allowEmptyValue: _a, ...rest } = p;
    schema = toJsonSchema(rest, { mode: "input", version: spec.version });
  } else if (isPlainObject(p.schema)) {
    schema = toJsonSchema(p.schema, { mode: "input", version: spec.version });
  } else if (isPlainObject(p.content)) {
    const first = Object.values(p.content)[0];
    schema = toJsonSchema(isPlainObject(first) ? first.schema : undefined, {
      mode: "input",
      version: spec.version,
    });
  } else {
    schema = {};
  }
  const style =
    typeof p.style === "string" ? p.style : location === "query" || location === "cookie" ? "form" : "simple";
  return {
    name: p.name as string,
    in: location,
    required: location === "path" || p.required === true,
    ...(typeof p.description === "string" ? { description: p.description } : {}),
    schema,
    style,
    explode: typeof p.explode === "boolean" ? p.explode : style === "form",
    ...(typeof p.collectionFormat === "string" ? { collectionFormat: p.collectionFormat } : {}),
  };
}

function pickV2Consumes(spec: LoadedSpec, op: Record<string, unknown>, want: "json" | "form"): string {
  const consumes = (Array.isArray(op.consumes) ? op.consumes : spec.document.consumes) as unknown;
  const list = Array.isArray(consumes) ? consumes.filter((c): c is string => typeof c === "string") : [];
  if (want === "json") return list.find(isJsonMediaType) ?? "application/json";
  return (
    list.find((c) => c.startsWith("application/x-www-form-urlencoded")) ??
    list.find((c) => c.startsWith("multipart/form-data")) ??
    "application/x-www-form-urlencoded"
  );
}

function buildV2FormBody(
  spec: LoadedSpec,
  op: Record<string, unknown>,
  fields: Record<string, unknown>[],
): BodySpec {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const f of fields) {
    const { name, in: _i, required: req, description, allowEmptyValue: _a, ...rest } = f;
    const schema = toJsonSchema(rest, { mode: "input", version: spec.version });
    if (typeof description === "string") schema.description = description;
    properties[name as string] = schema;
    if (req === true) required.push(name as string);
  }
  const hasFile = fields.some((f) => f.type === "file");
  const mediaType = hasFile ? "multipart/form-data" : pickV2Consumes(spec, op, "form");
  return {
    mediaType,
    encoding: mediaType.startsWith("multipart/") ? "multipart" : "form",
    required: required.length > 0,
    schema: { type: "object", properties, ...(required.length > 0 ? { required } : {}) },
  };
}

function buildV3Body(spec: LoadedSpec, requestBody: Record<string, unknown>): BodySpec | undefined {
  const content = isPlainObject(requestBody.content) ? requestBody.content : {};
  const types = Object.keys(content);
  // JSON first: it is what an agent produces best; then forms, text, and raw bytes last.
  const order: [(t: string) => boolean, BodyEncoding][] = [
    [isJsonMediaType, "json"],
    [(t) => t.startsWith("application/x-www-form-urlencoded"), "form"],
    [(t) => t.startsWith("multipart/form-data"), "multipart"],
    [(t) => t.startsWith("text/") || /xml/.test(t), "text"],
    [() => true, "binary"],
  ];
  for (const [match, encoding] of order) {
    const mediaType = types.find(match);
    if (mediaType === undefined) continue;
    const media = content[mediaType];
    const raw = isPlainObject(media) ? media.schema : undefined;
    let schema = toJsonSchema(raw, { mode: "input", version: spec.version });
    if (encoding === "binary") {
      schema = {
        type: "string",
        contentEncoding: "base64",
        description: `Raw ${mediaType} content, base64-encoded.`,
      };
    } else if (encoding === "text" && schema.type === undefined) {
      schema = { ...schema, type: "string" };
    }
    return {
      mediaType: mediaType === "*/*" ? "application/octet-stream" : mediaType,
      encoding,
      required: requestBody.required === true,
      ...(typeof requestBody.description === "string" ? { description: requestBody.description } : {}),
      schema,
    };
  }
  return undefined;
}

export function isJsonMediaType(t: string): boolean {
  const base = t.split(";")[0]!.trim().toLowerCase();
  return base === "application/json" || base.endsWith("+json") || base === "text/json";
}

/** 200 first, then the other 2xx in order, then the `2XX` range. */
function pickResponseSchema(spec: LoadedSpec, op: Record<string, unknown>): JsonSchema | undefined {
  const responses = isPlainObject(op.responses) ? op.responses : {};
  const codes = Object.keys(responses)
    .filter((c) => /^2(\d\d|XX)$/i.test(c))
    .sort((a, b) => rank(a) - rank(b));
  for (const code of codes) {
    const res = responses[code];
    if (!isPlainObject(res)) continue;
    if (spec.version === "2.0") {
      const produces = (Array.isArray(op.produces) ? op.produces : spec.document.produces) as unknown;
      const jsonOk =
        !Array.isArray(produces) || produces.some((p) => typeof p === "string" && isJsonMediaType(p));
      if (jsonOk && res.schema !== undefined)
        return toJsonSchema(res.schema, { mode: "output", version: spec.version });
      continue;
    }
    if (!isPlainObject(res.content)) continue;
    const mediaType = Object.keys(res.content).find(isJsonMediaType);
    const media = mediaType === undefined ? undefined : res.content[mediaType];
    if (isPlainObject(media) && media.schema !== undefined) {
      return toJsonSchema(media.schema, { mode: "output", version: spec.version });
    }
  }
  return undefined;
}

function rank(code: string): number {
  return /xx$/i.test(code) ? 1000 : Number(code);
}

export function matchesSelector(op: OperationSpec, sel: OperationSelector): boolean {
  if (sel.operationIds && !(op.operationId !== undefined && sel.operationIds.includes(op.operationId)))
    return false;
  if (sel.tags && !op.tags.some((t) => sel.tags!.includes(t))) return false;
  if (sel.methods && !sel.methods.includes(op.method.toUpperCase())) return false;
  if (sel.paths && !sel.paths.some((pattern) => pathPattern(pattern).test(op.path))) return false;
  return true;
}

const patternCache = new Map<string, RegExp>();

/** `*` matches one path segment, `**` any number of segments; everything else is literal. */
export function pathPattern(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (re) return re;
  const segments = (pattern.startsWith("/") ? pattern.slice(1) : pattern).split("/");
  const escape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const body = segments
    .map((seg) => (seg === "**" ? "(?:/.*)?" : `/${seg.split("*").map(escape).join("[^/]*")}`))
    .join("");
  re = new RegExp(`^${body}$`);
  patternCache.set(pattern, re);
  return re;
}

/**
 * `x-mcp: false` always wins (the API owner opted the operation out); then the connector's
 * `exclude`; `x-mcp: true` opts in regardless of `include`; otherwise `include` (when given) decides.
 */
export function isSelected(
  op: OperationSpec,
  include?: OperationSelector,
  exclude?: OperationSelector,
): boolean {
  if (op.xMcp === false) return false;
  if (exclude && matchesSelector(op, exclude)) return false;
  if (op.xMcp === true) return true;
  return include === undefined || matchesSelector(op, include);
}
