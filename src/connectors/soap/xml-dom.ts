import { XMLParser, XMLValidator } from "fast-xml-parser";

export const XSD_NS = "http://www.w3.org/2001/XMLSchema";
export const XSI_NS = "http://www.w3.org/2001/XMLSchema-instance";
export const XML_NS = "http://www.w3.org/XML/1998/namespace";

export interface XmlAttr {
  readonly ns: string;
  readonly local: string;
  readonly value: string;
}

/** A namespace-resolved element: what fast-xml-parser gives, with prefixes turned into URIs. */
export interface XmlElement {
  readonly ns: string;
  readonly local: string;
  readonly attrs: readonly XmlAttr[];
  readonly children: readonly XmlElement[];
  /** Concatenated direct text (CDATA included), untrimmed. */
  readonly text: string;
  /** In-scope prefix → URI bindings ("" is the default namespace), for QName-valued attributes. */
  readonly scope: ReadonlyMap<string, string>;
}

export class XmlSyntaxError extends Error {
  override readonly name = "XmlSyntaxError";
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  htmlEntities: false,
  // Only the five predefined entities: DTDs are refused before parsing (see parseXml).
  processEntities: true,
});

type RawNode = Record<string, unknown>;

/**
 * Parses XML into namespace-resolved elements. DOCTYPE declarations are refused outright: SOAP
 * forbids them in messages, and refusing them removes entity-expansion attacks from untrusted
 * responses and WSDLs alike.
 */
export function parseXml(text: string): XmlElement {
  if (/<!DOCTYPE/i.test(text))
    throw new XmlSyntaxError("document type declarations (DOCTYPE) are not allowed");
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true)
    throw new XmlSyntaxError(`${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`);
  const nodes = parser.parse(text) as RawNode[];
  const rootScope = new Map<string, string>([["xml", XML_NS]]);
  const roots = nodes.filter((n) => elementName(n) !== undefined);
  if (roots.length !== 1) throw new XmlSyntaxError("expected exactly one root element");
  return convert(roots[0]!, rootScope);
}

function elementName(node: RawNode): string | undefined {
  return Object.keys(node).find((k) => k !== ":@" && k !== "#text");
}

function splitQName(qname: string): [prefix: string, local: string] {
  const i = qname.indexOf(":");
  return i < 0 ? ["", qname] : [qname.slice(0, i), qname.slice(i + 1)];
}

function convert(node: RawNode, parentScope: ReadonlyMap<string, string>): XmlElement {
  const name = elementName(node)!;
  const rawAttrs = (node[":@"] ?? {}) as Record<string, string>;
  let scope = parentScope;
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === "xmlns" || k.startsWith("xmlns:")) {
      if (scope === parentScope) scope = new Map(parentScope);
      (scope as Map<string, string>).set(k === "xmlns" ? "" : k.slice(6), v);
    }
  }
  const attrs: XmlAttr[] = [];
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k === "xmlns" || k.startsWith("xmlns:")) continue;
    const [prefix, local] = splitQName(k);
    // Unprefixed attributes are in no namespace (they do not take the default namespace). Some
    // services (soap's own server among them) write xsi:nil without declaring xsi.
    const ns = prefix === "" ? "" : (scope.get(prefix) ?? (prefix === "xsi" ? XSI_NS : ""));
    attrs.push({ ns, local, value: String(v) });
  }
  const [prefix, local] = splitQName(name);
  const children: XmlElement[] = [];
  let text = "";
  for (const child of (node[name] ?? []) as RawNode[]) {
    if (Object.hasOwn(child, "#text")) text += String(child["#text"]);
    else if (elementName(child) !== undefined) children.push(convert(child, scope));
  }
  return { ns: scope.get(prefix) ?? "", local, attrs, children, text, scope };
}

export function attr(el: XmlElement, local: string, ns = ""): string | undefined {
  return el.attrs.find((a) => a.local === local && a.ns === ns)?.value;
}

export function childrenNamed(el: XmlElement, ns: string, local: string): XmlElement[] {
  return el.children.filter((c) => c.ns === ns && c.local === local);
}

export function firstChild(el: XmlElement, ns: string, local: string): XmlElement | undefined {
  return el.children.find((c) => c.ns === ns && c.local === local);
}

export interface QName {
  readonly ns: string;
  readonly local: string;
}

/** Resolves a QName-valued attribute (`tns:Order`) against the element's in-scope namespaces. */
export function resolveQName(el: XmlElement, value: string): QName {
  const [prefix, local] = splitQName(value.trim());
  const ns = el.scope.get(prefix);
  if (ns === undefined && prefix !== "")
    throw new XmlSyntaxError(`undeclared namespace prefix "${prefix}" in "${value}"`);
  return { ns: ns ?? "", local };
}

export function qnameKey(q: QName): string {
  return `{${q.ns}}${q.local}`;
}

export function escapeXmlText(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function escapeXmlAttr(value: string): string {
  return escapeXmlText(value)
    .replace(/"/g, "&quot;")
    .replace(/\r/g, "&#13;")
    .replace(/\n/g, "&#10;")
    .replace(/\t/g, "&#9;");
}

/** Characters XML 1.0 cannot carry at all (not even escaped). */
export const INVALID_XML_CHARS =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
