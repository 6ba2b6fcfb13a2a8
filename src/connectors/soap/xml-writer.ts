import { GatewayError, isPlainObject } from "../../core/index.js";
import { DECIMAL_PATTERN } from "./json-schema.js";
import type { MessageModel } from "./operations.js";
import { INVALID_XML_CHARS, XSI_NS, escapeXmlAttr, escapeXmlText } from "./xml-dom.js";
import type { AttrField, ComplexShape, Field, Shape, SimpleShape } from "./xsd-model.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const DECIMAL = new RegExp(DECIMAL_PATTERN);

function invalid(path: string, message: string): GatewayError {
  return new GatewayError("INVALID_ARGUMENTS", `argument ${path || "(root)"}: ${message}`, {
    details: { path, reason: message },
  });
}

/** Every namespace a message can use gets one prefix, declared once on each top-level element. */
export function namespacePrefixes(model: MessageModel): Map<string, string> {
  const out = new Map<string, string>();
  const seen = new Set<Shape>();
  const add = (ns: string): void => {
    if (ns !== "" && !out.has(ns)) out.set(ns, `ns${out.size + 1}`);
  };
  const walk = (fields: readonly Field[], attrs: readonly AttrField[]): void => {
    for (const a of attrs) add(a.ns);
    for (const f of fields) {
      add(f.ns);
      if (f.shape.kind === "complex" && !seen.has(f.shape)) {
        seen.add(f.shape);
        walk(f.shape.fields, f.shape.attrs);
      }
    }
  };
  walk(model.roots, []);
  return out;
}

export class MessageWriter {
  private readonly model: MessageModel;
  private readonly prefixes: Map<string, string>;
  private readonly declarations: string;

  constructor(model: MessageModel) {
    this.model = model;
    this.prefixes = namespacePrefixes(model);
    this.declarations =
      [...this.prefixes].map(([ns, p]) => ` xmlns:${p}="${escapeXmlAttr(ns)}"`).join("") +
      ` xmlns:xsi="${XSI_NS}"`;
  }

  /** The XML inside soap:Body (document style) or inside the rpc wrapper soap writes (rpc style). */
  write(args: Readonly<Record<string, unknown>>): string {
    const { roots, unwrap } = this.model;
    if (unwrap) {
      const root = roots[0]!;
      return this.element(root, args, "", true);
    }
    const known = new Set(roots.map((r) => r.prop));
    for (const key of Object.keys(args)) if (!known.has(key)) throw invalid(key, "unknown argument");
    return roots.map((r) => this.field(r, args[r.prop], r.prop, true)).join("");
  }

  private tag(ns: string, name: string): string {
    return ns === "" ? name : `${this.prefixes.get(ns)}:${name}`;
  }

  private field(f: Field, value: unknown, path: string, top = false): string {
    if (value === undefined) {
      if (f.min > 0) throw invalid(path, "is required");
      return "";
    }
    if (f.max > 1) {
      if (!Array.isArray(value)) throw invalid(path, "must be an array");
      if (value.length < f.min) throw invalid(path, `needs at least ${f.min} items`);
      if (value.length > f.max) throw invalid(path, `allows at most ${f.max} items`);
      return value.map((v, i) => this.element(f, v, `${path}[${i}]`, top)).join("");
    }
    return this.element(f, value, path, top);
  }

  private element(f: Field, value: unknown, path: string, top: boolean): string {
    const name = this.tag(f.ns, f.xmlName);
    const decl = top ? this.declarations : "";
    if (value === null) {
      if (!f.nillable) throw invalid(path, "must not be null");
      return `<${name}${decl} xsi:nil="true"/>`;
    }
    const shape = f.shape;
    if (shape.kind === "simple") return `<${name}${decl}>${simpleText(shape, value, path)}</${name}>`;
    if (shape.kind === "cut") {
      if (!isPlainObject(value) || Object.keys(value).length > 0)
        throw invalid(path, "must be {} (not expanded)");
      return `<${name}${decl}/>`;
    }
    if (!isPlainObject(value)) throw invalid(path, "must be an object");
    return this.complex(name, decl, shape, value, path);
  }

  private complex(
    name: string,
    decl: string,
    shape: ComplexShape,
    value: Record<string, unknown>,
    path: string,
  ): string {
    const known = new Set<string>([...shape.fields.map((f) => f.prop), ...shape.attrs.map((a) => a.prop)]);
    if (shape.text) known.add(shape.text.prop);
    for (const key of Object.keys(value))
      if (!known.has(key)) throw invalid(join(path, key), "unknown property");
    let attrs = "";
    for (const a of shape.attrs) {
      const v = value[a.prop];
      if (v === undefined || v === null) {
        if (a.required) throw invalid(join(path, a.prop), "is required");
        continue;
      }
      attrs += ` ${this.tag(a.ns, a.xmlName)}="${escapeXmlAttr(lexical(a.shape, v, join(path, a.prop)))}"`;
    }
    let content = "";
    if (shape.text) {
      const v = value[shape.text.prop];
      if (v === undefined) throw invalid(join(path, shape.text.prop), "is required");
      content = simpleText(shape.text.shape, v, join(path, shape.text.prop));
    }
    for (const f of shape.fields) content += this.field(f, value[f.prop], join(path, f.prop));
    return content === "" ? `<${name}${decl}${attrs}/>` : `<${name}${decl}${attrs}>${content}</${name}>`;
  }
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function simpleText(shape: SimpleShape, value: unknown, path: string): string {
  return escapeXmlText(lexical(shape, value, path));
}

/** The XSD lexical form of one JSON value; refuses anything the type cannot carry exactly. */
export function lexical(shape: SimpleShape, value: unknown, path: string): string {
  if (shape.list) {
    if (!Array.isArray(value)) throw invalid(path, "must be an array");
    return value.map((v, i) => lexical({ ...shape, list: false }, v, `${path}[${i}]`)).join(" ");
  }
  let text: string;
  switch (shape.primitive) {
    case "boolean":
      if (typeof value !== "boolean") throw invalid(path, "must be a boolean");
      return value ? "true" : "false";
    case "int":
    case "bigint": {
      let n: bigint;
      if (typeof value === "number") {
        if (!Number.isSafeInteger(value))
          throw invalid(path, "must be an integer within ±2^53 (send larger values as a string)");
        n = BigInt(value);
      } else if (typeof value === "string" && /^[+-]?[0-9]+$/.test(value) && shape.primitive === "bigint") {
        n = BigInt(value);
      } else throw invalid(path, `must be an integer (${shape.builtin})`);
      if (shape.min !== undefined && n < shape.min) throw invalid(path, `must be at least ${shape.min}`);
      if (shape.max !== undefined && n > shape.max) throw invalid(path, `must be at most ${shape.max}`);
      if (shape.primitive === "int" && (n > MAX_SAFE || n < -MAX_SAFE)) throw invalid(path, "out of range");
      text = n.toString();
      break;
    }
    case "float":
      if (typeof value === "number" && Number.isFinite(value)) text = String(value);
      else if (value === "INF" || value === "-INF" || value === "NaN") text = value;
      else throw invalid(path, "must be a finite number");
      break;
    case "decimal":
      if (typeof value !== "string" || !DECIMAL.test(value))
        throw invalid(path, "must be a decimal number written as a string");
      text = value;
      break;
    default:
      if (typeof value !== "string") throw invalid(path, "must be a string");
      text = value;
  }
  if (shape.enum && !shape.enum.includes(text))
    throw invalid(path, `must be one of ${shape.enum.join(", ")}`);
  if (INVALID_XML_CHARS.test(text)) throw invalid(path, "contains characters XML cannot carry");
  return text;
}
