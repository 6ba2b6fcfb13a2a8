import { GatewayError, isPlainObject } from "../../core/index.js";
import type { ParamSpec } from "./operations.js";
import type { BoundTool } from "./tools.js";

export interface PreparedRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  data?: string | Buffer | FormData;
}

const MAX_HEADER_VALUE = 8 * 1024;

/**
 * Turns validated arguments into a request. The host never comes from arguments: every value is
 * percent-encoded into the configured base URL, and the result must still sit under it.
 */
export function prepareRequest(
  connector: string,
  tool: BoundTool,
  args: Readonly<Record<string, unknown>>,
  base: URL,
) {
  const op = tool.op;
  let path = op.path;
  const query: string[] = [];
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  const bad = (message: string) =>
    new GatewayError("INVALID_ARGUMENTS", `tool ${tool.definition.name}: ${message}`, {
      details: { connector },
    });

  for (const { arg, param } of tool.params) {
    const value = args[arg];
    if (value === undefined || value === null) {
      if (param.in === "path") throw bad(`path parameter "${arg}" is required`);
      continue;
    }
    switch (param.in) {
      case "path": {
        const text = serializeSimple(value, param.explode);
        if (text === "" || text === "." || text === "..") {
          throw bad(`path parameter "${arg}" must not be empty, "." or ".."`);
        }
        path = path.split(`{${param.name}}`).join(encodeURIComponent(text));
        break;
      }
      case "query":
        query.push(...serializeQuery(param, value));
        break;
      case "header": {
        const text = serializeSimple(value, param.explode);
        if (/[\r\n\0]/.test(text) || text.length > MAX_HEADER_VALUE) {
          throw bad(`header parameter "${arg}" contains line breaks or is too long`);
        }
        headers[param.name] = text;
        break;
      }
      case "cookie":
        cookies.push(
          `${encodeURIComponent(param.name)}=${encodeURIComponent(serializeSimple(value, false))}`,
        );
        break;
    }
  }
  if (/\{[^}]+\}/.test(path)) throw bad(`missing path parameters for ${op.path}`);
  // Adjacent parameters ("/{a}{b}") could still join into a dot segment.
  if (path.split("/").some((seg) => seg === "." || seg === ".."))
    throw bad(`path parameters form a "." or ".." segment`);

  const url = joinUnderBase(connector, base, path, query);
  const prepared: PreparedRequest = { method: op.method.toUpperCase(), url, headers };
  if (cookies.length > 0) headers.cookie = cookies.join("; ");

  const bodyValue = tool.bodyArg === undefined ? undefined : args[tool.bodyArg];
  if (tool.body && bodyValue !== undefined) {
    const { data, contentType } = encodeBody(tool, bodyValue, bad);
    prepared.data = data;
    if (contentType) headers["content-type"] = contentType;
  }
  return prepared;
}

/**
 * Concatenates (never resolves: `new URL("//evil", base)` would change host) and then checks the
 * result is still on the base origin and under the base path, after the URL parser's dot-segment
 * normalisation.
 */
export function joinUnderBase(connector: string, base: URL, path: string, query: readonly string[]): URL {
  const basePath = base.pathname.replace(/\/+$/, "");
  const search = [base.search.replace(/^\?/, ""), ...query].filter((s) => s !== "").join("&");
  const url = new URL(`${base.origin}${basePath}${path}${search === "" ? "" : `?${search}`}`);
  const underBase = url.pathname === basePath || url.pathname.startsWith(`${basePath}/`) || basePath === "";
  if (url.origin !== base.origin || !underBase) {
    throw new GatewayError(
      "INVALID_ARGUMENTS",
      `connector "${connector}" (rest): the request would leave the configured base URL; refusing it`,
    );
  }
  return url;
}

function scalar(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  return JSON.stringify(value);
}

/** OpenAPI `simple` style (path and header parameters). */
function serializeSimple(value: unknown, explode: boolean): string {
  if (Array.isArray(value)) return value.map(scalar).join(",");
  if (isPlainObject(value)) {
    return Object.entries(value)
      .map(([k, v]) => (explode ? `${k}=${scalar(v)}` : `${k},${scalar(v)}`))
      .join(",");
  }
  return scalar(value);
}

const enc = encodeURIComponent;
const DELIMITERS: Record<string, string> = { csv: ",", ssv: " ", tsv: "\t", pipes: "|" };

function serializeQuery(param: ParamSpec, value: unknown): string[] {
  const name = param.name;
  if (Array.isArray(value)) {
    if (param.collectionFormat !== undefined) {
      if (param.collectionFormat === "multi") return value.map((v) => `${enc(name)}=${enc(scalar(v))}`);
      return [`${enc(name)}=${enc(value.map(scalar).join(DELIMITERS[param.collectionFormat] ?? ","))}`];
    }
    if (param.style === "spaceDelimited") return [`${enc(name)}=${enc(value.map(scalar).join(" "))}`];
    if (param.style === "pipeDelimited") return [`${enc(name)}=${enc(value.map(scalar).join("|"))}`];
    if (param.explode) return value.map((v) => `${enc(name)}=${enc(scalar(v))}`);
    return [`${enc(name)}=${enc(value.map(scalar).join(","))}`];
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (param.style === "deepObject")
      return entries.map(([k, v]) => `${enc(`${name}[${k}]`)}=${enc(scalar(v))}`);
    if (param.explode) return entries.map(([k, v]) => `${enc(k)}=${enc(scalar(v))}`);
    return [`${enc(name)}=${enc(entries.map(([k, v]) => `${k},${scalar(v)}`).join(","))}`];
  }
  return [`${enc(name)}=${enc(scalar(value))}`];
}

function encodeBody(
  tool: BoundTool,
  value: unknown,
  bad: (m: string) => GatewayError,
): { data: string | Buffer | FormData; contentType?: string } {
  const body = tool.body!;
  switch (body.encoding) {
    case "json":
      return { data: JSON.stringify(value), contentType: body.mediaType };
    case "text":
      return { data: scalar(value), contentType: body.mediaType };
    case "binary": {
      if (typeof value !== "string" || !/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(value)) {
        throw bad(`"${tool.bodyArg}" must be base64-encoded ${body.mediaType} content`);
      }
      return { data: Buffer.from(value, "base64"), contentType: body.mediaType };
    }
    case "form": {
      if (!isPlainObject(value)) throw bad(`"${tool.bodyArg}" must be an object of form fields`);
      const form = new URLSearchParams();
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined || v === null) continue;
        for (const item of Array.isArray(v) ? v : [v]) form.append(k, scalar(item));
      }
      return { data: form.toString(), contentType: "application/x-www-form-urlencoded" };
    }
    case "multipart": {
      if (!isPlainObject(value)) throw bad(`"${tool.bodyArg}" must be an object of form fields`);
      const props = isPlainObject(body.schema.properties) ? body.schema.properties : {};
      const form = new FormData();
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined || v === null) continue;
        const fieldSchema = props[k];
        const isFile = isPlainObject(fieldSchema) && fieldSchema.contentEncoding === "base64";
        if (isFile && typeof v === "string") form.append(k, new Blob([Buffer.from(v, "base64")]), k);
        else form.append(k, scalar(v));
      }
      // The transport sets the multipart boundary itself.
      return { data: form };
    }
  }
}
