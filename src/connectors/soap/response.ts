import type { MessageModel } from "./operations.js";
import { XSI_NS, attr, parseXml, type XmlElement } from "./xml-dom.js";
import type { ComplexShape, Field, Shape, SimpleShape } from "./xsd-model.js";

const SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope";
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_FAULT_TEXT = 500;

export interface SoapFault {
  readonly version: "1.1" | "1.2";
  /** Local part of the fault code (`Client`, `Sender`, or the service's own code). */
  readonly code: string;
  readonly subcode?: string;
  readonly reason: string;
  readonly actor?: string;
  /** The fault detail, converted to JSON without types (the WSDL's fault messages are not consulted). */
  readonly detail?: unknown;
}

export type ParsedResponse =
  | { readonly kind: "fault"; readonly fault: SoapFault }
  | { readonly kind: "body"; readonly body: XmlElement; readonly version: "1.1" | "1.2" };

export class NotSoapError extends Error {
  override readonly name = "NotSoapError";
}

/** Parses a response envelope. Throws XmlSyntaxError (malformed) or NotSoapError (well-formed, not SOAP). */
export function parseEnvelope(text: string): ParsedResponse {
  const env = parseXml(text);
  if (env.local !== "Envelope" || (env.ns !== SOAP11_ENV && env.ns !== SOAP12_ENV)) {
    throw new NotSoapError(`root element is <${env.local}>, not a SOAP Envelope`);
  }
  const version = env.ns === SOAP12_ENV ? "1.2" : "1.1";
  const body = env.children.find((c) => c.ns === env.ns && c.local === "Body");
  if (!body) throw new NotSoapError("the SOAP Envelope has no Body");
  const fault = body.children.find((c) => c.ns === env.ns && c.local === "Fault");
  if (fault) {
    // Some services (soap's own server on authentication failures) put 1.2-style Code/Reason in a 1.1 envelope.
    const style12 =
      version === "1.2" || (child(fault, "faultcode") === undefined && child(fault, "Code") !== undefined);
    return { kind: "fault", fault: style12 ? { ...fault12(fault), version } : fault11(fault) };
  }
  return { kind: "body", body, version };
}

function clip(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > MAX_FAULT_TEXT ? `${t.slice(0, MAX_FAULT_TEXT - 1)}…` : t;
}

function localOf(qname: string): string {
  const t = qname.trim();
  return t.slice(t.indexOf(":") + 1);
}

function child(el: XmlElement | undefined, local: string): XmlElement | undefined {
  return el?.children.find((c) => c.local === local);
}

function textOf(el: XmlElement | undefined): string {
  return el ? el.text + el.children.map(textOf).join("") : "";
}

function detailOf(el: XmlElement | undefined): unknown {
  if (!el) return undefined;
  if (el.children.length === 0) return el.text.trim() === "" ? undefined : clip(el.text);
  return untyped(el);
}

function fault11(f: XmlElement): SoapFault {
  const actor = child(f, "faultactor");
  const detail = detailOf(child(f, "detail"));
  return {
    version: "1.1",
    code: localOf(textOf(child(f, "faultcode"))) || "Server",
    reason: clip(textOf(child(f, "faultstring"))),
    ...(actor ? { actor: clip(textOf(actor)) } : {}),
    ...(detail !== undefined ? { detail } : {}),
  };
}

function fault12(f: XmlElement): SoapFault {
  const code = child(f, "Code");
  const sub = child(code, "Subcode");
  const reason = child(f, "Reason");
  const texts = reason?.children.filter((c) => c.local === "Text") ?? [];
  const preferred =
    texts.find((t) => (attr(t, "lang", "http://www.w3.org/XML/1998/namespace") ?? "").startsWith("en")) ??
    texts[0];
  const detail = detailOf(child(f, "Detail"));
  const subcode = sub ? localOf(textOf(child(sub, "Value"))) : "";
  return {
    version: "1.2",
    code: localOf(textOf(child(code, "Value"))) || "Receiver",
    ...(subcode ? { subcode } : {}),
    reason: clip(textOf(preferred)),
    ...(detail !== undefined ? { detail } : {}),
  };
}

/** The fault detail as one short line for the agent's message. */
export function compactDetail(detail: unknown): string {
  if (detail === undefined) return "";
  const text = typeof detail === "string" ? detail : JSON.stringify(detail);
  return text.length > MAX_FAULT_TEXT ? `${text.slice(0, MAX_FAULT_TEXT - 1)}…` : text;
}

/** Converts the Body's content into the tool's structured result, typed by the output message. */
export function bodyToResult(body: XmlElement, model: MessageModel | undefined): Record<string, unknown> {
  const elements = body.children;
  if (!model || elements.length === 0) return {};
  if (model.unwrap) {
    const root = model.roots[0]!;
    const el = elements.find((e) => e.local === root.xmlName) ?? elements[0]!;
    const value = convertElement(el, root.shape);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : { [root.prop]: value };
  }
  // rpc: the parts sit inside a wrapper element; document with several parts: directly in Body.
  const container = model.rpc ? elements[0]!.children : elements;
  return convertChildren(container, model.roots, []);
}

function convertChildren(
  children: readonly XmlElement[],
  fields: readonly Field[],
  attrsOut: [string, unknown][],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of attrsOut) setProp(out, k, v);
  const byName = new Map(fields.map((f) => [f.xmlName, f]));
  for (const el of children) {
    const f = byName.get(el.local);
    if (f) {
      const v = convertElement(el, f.shape);
      if (f.max > 1) {
        if (!Object.hasOwn(out, f.prop)) setProp(out, f.prop, []);
        (out[f.prop] as unknown[]).push(v);
      } else setProp(out, f.prop, v);
    } else {
      // Not in the WSDL: kept rather than dropped, so nothing the service said is lost.
      addUntyped(out, el.local, untypedValue(el));
    }
  }
  return out;
}

function isNil(el: XmlElement): boolean {
  const nil = attr(el, "nil", XSI_NS);
  return nil === "true" || nil === "1";
}

function convertElement(el: XmlElement, shape: Shape): unknown {
  if (isNil(el)) return null;
  switch (shape.kind) {
    case "simple":
      return typedText(shape, el.text);
    case "cut":
      return untypedValue(el);
    case "complex":
      return convertComplex(el, shape);
  }
}

function convertComplex(el: XmlElement, shape: ComplexShape): Record<string, unknown> {
  const attrs: [string, unknown][] = [];
  for (const a of shape.attrs) {
    const v = el.attrs.find((x) => x.local === a.xmlName && (x.ns === a.ns || x.ns === ""));
    if (v) attrs.push([a.prop, typedText(a.shape, v.value)]);
  }
  if (shape.text) attrs.push([shape.text.prop, typedText(shape.text.shape, el.text)]);
  return convertChildren(el.children, shape.fields, attrs);
}

/** The XSD's types in JSON: integers and floats as numbers, booleans as booleans, decimals and big integers as exact strings. */
export function typedText(shape: SimpleShape, raw: string): unknown {
  if (shape.list) {
    const item = { ...shape, list: false };
    return raw
      .trim()
      .split(/\s+/)
      .filter((t) => t !== "")
      .map((t) => typedText(item, t));
  }
  if (shape.primitive === "string" || shape.primitive === "any") return raw;
  const t = raw.trim();
  switch (shape.primitive) {
    case "boolean":
      return t === "true" || t === "1" ? true : t === "false" || t === "0" ? false : t;
    case "int":
    case "bigint": {
      if (!/^[+-]?\d+$/.test(t)) return t;
      const n = BigInt(t);
      return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : n.toString();
    }
    case "float": {
      const n = Number(t);
      return t !== "" && Number.isFinite(n) ? n : t;
    }
    default:
      return t;
  }
}

/** Plain assignment would let an upstream element named `__proto__` replace the prototype. */
function setProp(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

function addUntyped(out: Record<string, unknown>, key: string, value: unknown): void {
  if (!Object.hasOwn(out, key)) setProp(out, key, value);
  else if (Array.isArray(out[key])) (out[key] as unknown[]).push(value);
  else setProp(out, key, [out[key], value]);
}

function untypedValue(el: XmlElement): unknown {
  if (isNil(el)) return null;
  const attrs = el.attrs.filter((a) => a.ns !== XSI_NS);
  if (el.children.length === 0 && attrs.length === 0) return el.text.trim();
  return untyped(el);
}

/** An element the WSDL does not describe: children by local name, repeated ones as arrays, all text. */
function untyped(el: XmlElement): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of el.attrs) if (a.ns !== XSI_NS) setProp(out, `@${a.local}`, a.value);
  for (const c of el.children) addUntyped(out, c.local, untypedValue(c));
  if (el.children.length === 0 && el.text.trim() !== "") setProp(out, "value", el.text.trim());
  return out;
}
