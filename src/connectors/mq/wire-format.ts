import { XMLBuilder, XMLParser } from "fast-xml-parser";
import { GatewayError, isPlainObject } from "../../core/index.js";
import type { MqFormat } from "./config.js";
import {
  compileLayout,
  decodeRecord,
  encodeRecord,
  RecordError,
  type RecordEncoding,
} from "./fixed-width.js";

/** Turns tool arguments into a message body and a reply body into a JSON object. */
export interface WireCodec {
  readonly contentType: string;
  /** Character set of the body, so IBM MQ can convert it (CCSID) and AMQP can label it. */
  readonly charset: RecordEncoding;
  /** Whether the decoded reply carries only text, so its schema validation should coerce types. */
  readonly textual: boolean;
  /** Throws GatewayError INVALID_ARGUMENTS naming the argument that does not fit. */
  encode(args: Readonly<Record<string, unknown>>): Buffer;
  /** Throws GatewayError UPSTREAM_BAD_RESPONSE saying what is malformed. */
  decode(body: Buffer): Record<string, unknown>;
}

export function createCodec(format: MqFormat, replySchema: Record<string, unknown>, what: string): WireCodec {
  switch (format.type) {
    case "json":
      return jsonCodec(what);
    case "xml":
      return xmlCodec(format.requestRoot, format.replyRoot, arrayPaths(replySchema), what);
    case "fixed":
      return fixedCodec(format, what);
  }
}

function badReply(what: string, message: string, cause?: unknown): GatewayError {
  return new GatewayError("UPSTREAM_BAD_RESPONSE", `${what}: malformed reply: ${message}`, { cause });
}

function jsonCodec(what: string): WireCodec {
  return {
    contentType: "application/json",
    charset: "utf8",
    textual: false,
    encode: (args) => Buffer.from(JSON.stringify(args), "utf8"),
    decode(body) {
      let value: unknown;
      try {
        value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch (err) {
        throw badReply(what, "not valid UTF-8 JSON", err);
      }
      if (!isPlainObject(value)) throw badReply(what, "the JSON is not an object");
      return value;
    },
  };
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

/** Element names come from argument keys, which an agent controls when a schema allows extra keys. */
function checkXmlNames(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v) => checkXmlNames(v, path));
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (!XML_NAME.test(k) || /^xml/i.test(k)) {
        throw new GatewayError("INVALID_ARGUMENTS", `argument ${path}${k} cannot be an XML element name`);
      }
      checkXmlNames(v, `${path}${k}.`);
    }
  } else if (typeof value === "number" && !Number.isFinite(value)) {
    throw new GatewayError("INVALID_ARGUMENTS", `argument ${path.slice(0, -1)} is not a finite number`);
  }
}

/** Dotted element paths (below the root) whose reply schema type is array, so one element still parses as a list. */
function arrayPaths(schema: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const walk = (s: unknown, path: string, depth: number) => {
    if (!isPlainObject(s) || depth > 32) return;
    if (s.type === "array") {
      out.add(path);
      walk(s.items, path, depth + 1);
      return;
    }
    if (isPlainObject(s.properties)) {
      for (const [k, v] of Object.entries(s.properties)) walk(v, path === "" ? k : `${path}.${k}`, depth + 1);
    }
  };
  walk(schema, "", 0);
  return out;
}

function xmlCodec(
  requestRoot: string,
  replyRoot: string | undefined,
  arrays: Set<string>,
  what: string,
): WireCodec {
  const builder = new XMLBuilder({ ignoreAttributes: true, suppressEmptyNode: false, processEntities: true });
  const parser = new XMLParser({
    ignoreAttributes: true,
    // Values stay text: "00042" and "12.50" must reach the schema as written, never through a float.
    parseTagValue: false,
    trimValues: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    processEntities: false,
    jPath: true,
    isArray: (_name, jPath) => {
      const path = String(jPath);
      const dot = path.indexOf(".");
      return dot >= 0 && arrays.has(path.slice(dot + 1));
    },
  });
  return {
    contentType: "application/xml",
    charset: "utf8",
    textual: true,
    encode(args) {
      checkXmlNames(args, "");
      return Buffer.from(
        `<?xml version="1.0" encoding="UTF-8"?>${builder.build({ [requestRoot]: args }) as string}`,
        "utf8",
      );
    },
    decode(body) {
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(body);
      } catch (err) {
        throw badReply(what, "not valid UTF-8", err);
      }
      // No DTDs at all: entity expansion is the classic XML denial of service.
      if (/<!DOCTYPE/i.test(text)) throw badReply(what, "XML with a DOCTYPE is refused");
      let doc: unknown;
      try {
        doc = parser.parse(text, true);
      } catch (err) {
        throw badReply(what, `not well-formed XML (${String((err as Error).message).slice(0, 120)})`, err);
      }
      if (!isPlainObject(doc)) throw badReply(what, "empty XML document");
      const roots = Object.keys(doc);
      if (roots.length !== 1) throw badReply(what, `expected one root element, found ${roots.length}`);
      const root = roots[0]!;
      if (replyRoot !== undefined && root !== replyRoot) {
        throw badReply(what, `expected root element <${replyRoot}>, found <${root.slice(0, 64)}>`);
      }
      const content = doc[root];
      if (content === "") return {};
      if (!isPlainObject(content))
        throw badReply(what, `root element <${root.slice(0, 64)}> holds no elements`);
      return content;
    },
  };
}

function fixedCodec(format: Extract<MqFormat, { type: "fixed" }>, what: string): WireCodec {
  const encoding = format.encoding ?? "latin1";
  const request = compileLayout(format.request, encoding).layout;
  const reply = compileLayout(format.reply, encoding).layout;
  return {
    contentType: "text/plain",
    charset: encoding,
    textual: false,
    encode(args) {
      try {
        return encodeRecord(request, args);
      } catch (err) {
        if (err instanceof RecordError) {
          throw new GatewayError("INVALID_ARGUMENTS", `${what}: ${err.message}`, {
            cause: err,
            details: err.field === undefined ? undefined : { field: err.field },
          });
        }
        throw err;
      }
    },
    decode(body) {
      try {
        return decodeRecord(reply, body);
      } catch (err) {
        if (err instanceof RecordError) throw badReply(what, err.message, err);
        throw err;
      }
    },
  };
}
