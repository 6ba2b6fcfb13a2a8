import { readFile } from "node:fs/promises";
import { dirname, resolve as resolvePath } from "node:path";
import type { AxiosInstance } from "axios";
import {
  XSD_NS,
  attr,
  childrenNamed,
  firstChild,
  parseXml,
  qnameKey,
  resolveQName,
  type QName,
  type XmlElement,
} from "./xml-dom.js";

export const WSDL_NS = "http://schemas.xmlsoap.org/wsdl/";
const WSDL_SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/";
const WSDL_SOAP12_NS = "http://schemas.xmlsoap.org/wsdl/soap12/";
const WSDL2_NS = "http://www.w3.org/ns/wsdl";

/** Imports and includes beyond this are refused: a WSDL that needs more is broken or hostile. */
const MAX_DOCUMENTS = 64;
const MAX_DOCUMENT_BYTES = 20 * 1024 * 1024;

export type SoapVersion = "1.1" | "1.2";

/** A top-level XSD component with what it needs to be interpreted outside its document. */
export interface SchemaComponent {
  readonly el: XmlElement;
  readonly targetNamespace: string;
  readonly elementQualified: boolean;
  readonly attributeQualified: boolean;
  /** Set for a schema included without a targetNamespace: its unprefixed references take the includer's. */
  readonly chameleon: boolean;
}

export interface SchemaRegistry {
  readonly elements: Map<string, SchemaComponent>;
  readonly complexTypes: Map<string, SchemaComponent>;
  readonly simpleTypes: Map<string, SchemaComponent>;
  readonly groups: Map<string, SchemaComponent>;
  readonly attributeGroups: Map<string, SchemaComponent>;
  readonly attributes: Map<string, SchemaComponent>;
}

export interface MessagePart {
  readonly name: string;
  readonly element?: QName;
  readonly type?: QName;
}

export interface PortTypeOperation {
  readonly name: string;
  readonly documentation?: string;
  readonly input?: QName;
  readonly output?: QName;
}

export interface BindingOperation {
  readonly name: string;
  readonly style: "document" | "rpc";
  readonly soapAction: string;
  readonly encoded: boolean;
  /** soap:body namespace (rpc style wrappers). */
  readonly namespace?: string;
}

export interface Binding {
  readonly name: QName;
  readonly portType: QName;
  readonly version: SoapVersion;
  readonly operations: readonly BindingOperation[];
}

export interface ServicePort {
  readonly name: string;
  readonly binding: QName;
  readonly location: string | undefined;
  readonly version: SoapVersion;
}

export interface Service {
  readonly name: string;
  readonly documentation?: string;
  readonly ports: readonly ServicePort[];
}

export interface Wsdl {
  readonly targetNamespace: string;
  readonly schemas: SchemaRegistry;
  readonly messages: Map<string, readonly MessagePart[]>;
  readonly portTypes: Map<string, readonly PortTypeOperation[]>;
  readonly bindings: Map<string, Binding>;
  readonly services: readonly Service[];
}

export class WsdlError extends Error {
  override readonly name = "WsdlError";
  /** A remote document could not be fetched: the upstream's condition, not the config's. */
  readonly unavailable: boolean;

  constructor(message: string, options: { cause?: unknown; unavailable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.unavailable = options.unavailable ?? false;
  }
}

type Location = { kind: "file"; path: string } | { kind: "url"; url: URL };

function showLocation(loc: Location): string {
  return loc.kind === "file" ? loc.path : `${loc.url.origin}${loc.url.pathname}`;
}

export function resolveLocation(ref: string, base: Location | { kind: "dir"; path: string }): Location {
  if (/^https?:\/\//i.test(ref)) return { kind: "url", url: new URL(ref) };
  if (base.kind === "url") {
    const url = new URL(ref, base.url);
    // A remote document must not make the gateway read its local files.
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new WsdlError(`${showLocation(base)} refers to "${ref}", which is neither http nor https`);
    }
    return { kind: "url", url };
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref) && !/^[a-z]:[\\/]/i.test(ref)) {
    throw new WsdlError(`unsupported location "${ref}" (use a relative path or an http(s) URL)`);
  }
  const dir = base.kind === "dir" ? base.path : dirname(base.path);
  return { kind: "file", path: resolvePath(dir, ref) };
}

/** Loads a WSDL 1.1 document with its wsdl:import, xsd:import and xsd:include documents. */
export async function loadWsdl(ref: string, baseDir: string, http: AxiosInstance): Promise<Wsdl> {
  const loader = new Loader(http);
  const root = resolveLocation(ref, { kind: "dir", path: baseDir });
  const rootEl = await loader.read(root);
  if (rootEl.ns === WSDL2_NS)
    throw new WsdlError(`${showLocation(root)} is WSDL 2.0, which is not supported (WSDL 1.1 only)`);
  if (rootEl.ns !== WSDL_NS || rootEl.local !== "definitions") {
    throw new WsdlError(
      `${showLocation(root)} is not a WSDL 1.1 document (root element is <${rootEl.local}>)`,
    );
  }
  await loader.definitions(rootEl, root);
  return {
    targetNamespace: attr(rootEl, "targetNamespace") ?? "",
    schemas: loader.schemas,
    messages: loader.messages,
    portTypes: loader.portTypes,
    bindings: loader.bindings,
    services: loader.services,
  };
}

function documentation(el: XmlElement): string | undefined {
  const doc = firstChild(el, WSDL_NS, "documentation");
  const text = doc ? collectText(doc).replace(/\s+/g, " ").trim() : "";
  return text === "" ? undefined : text;
}

export function collectText(el: XmlElement): string {
  return el.text + el.children.map(collectText).join("");
}

class Loader {
  readonly schemas: SchemaRegistry = {
    elements: new Map(),
    complexTypes: new Map(),
    simpleTypes: new Map(),
    groups: new Map(),
    attributeGroups: new Map(),
    attributes: new Map(),
  };
  readonly messages = new Map<string, readonly MessagePart[]>();
  readonly portTypes = new Map<string, readonly PortTypeOperation[]>();
  readonly bindings = new Map<string, Binding>();
  readonly services: Service[] = [];
  private readonly seen = new Set<string>();
  private readonly http: AxiosInstance;

  constructor(http: AxiosInstance) {
    this.http = http;
  }

  async read(loc: Location): Promise<XmlElement> {
    if (this.seen.size >= MAX_DOCUMENTS) throw new WsdlError(`more than ${MAX_DOCUMENTS} imported documents`);
    this.seen.add(locKey(loc));
    let text: string;
    try {
      if (loc.kind === "file") {
        const buf = await readFile(loc.path);
        if (buf.length > MAX_DOCUMENT_BYTES) throw new WsdlError(`larger than ${MAX_DOCUMENT_BYTES} bytes`);
        text = buf.toString("utf8");
      } else {
        const res = await this.http.get<string>(loc.url.href, {
          responseType: "text",
          transformResponse: (d: unknown) => d,
          maxContentLength: MAX_DOCUMENT_BYTES,
          maxRedirects: 3,
          timeout: 30_000,
        });
        if (res.status < 200 || res.status >= 300) throw new WsdlError(`HTTP ${res.status}`);
        text = String(res.data);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT"
          ? "file not found"
          : err instanceof WsdlError
            ? err.message
            : (code ?? "cannot read");
      throw new WsdlError(`cannot load ${showLocation(loc)}: ${why}`, {
        cause: err,
        unavailable: loc.kind === "url",
      });
    }
    try {
      return parseXml(text.replace(/^\uFEFF/, ""));
    } catch (err) {
      throw new WsdlError(`${showLocation(loc)} is not well-formed XML: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private isNew(loc: Location): boolean {
    return !this.seen.has(locKey(loc));
  }

  async definitions(defs: XmlElement, loc: Location): Promise<void> {
    for (const imp of childrenNamed(defs, WSDL_NS, "import")) {
      const where = attr(imp, "location");
      if (!where) continue;
      const next = resolveLocation(where, loc);
      if (!this.isNew(next)) continue;
      const el = await this.read(next);
      if (el.ns === WSDL_NS && el.local === "definitions") await this.definitions(el, next);
      else if (el.ns === XSD_NS && el.local === "schema") await this.schema(el, next, undefined);
    }
    for (const types of childrenNamed(defs, WSDL_NS, "types")) {
      for (const schema of childrenNamed(types, XSD_NS, "schema")) await this.schema(schema, loc, undefined);
    }
    const tns = attr(defs, "targetNamespace") ?? "";
    for (const msg of childrenNamed(defs, WSDL_NS, "message")) {
      const parts = childrenNamed(msg, WSDL_NS, "part").map((p) => {
        const element = attr(p, "element");
        const type = attr(p, "type");
        return {
          name: attr(p, "name") ?? "",
          ...(element ? { element: resolveQName(p, element) } : {}),
          ...(type ? { type: resolveQName(p, type) } : {}),
        };
      });
      this.messages.set(qnameKey({ ns: tns, local: attr(msg, "name") ?? "" }), parts);
    }
    for (const pt of childrenNamed(defs, WSDL_NS, "portType")) {
      const ops = childrenNamed(pt, WSDL_NS, "operation").map((op): PortTypeOperation => {
        const input = firstChild(op, WSDL_NS, "input");
        const output = firstChild(op, WSDL_NS, "output");
        const doc = documentation(op);
        const inMsg = input && attr(input, "message");
        const outMsg = output && attr(output, "message");
        return {
          name: attr(op, "name") ?? "",
          ...(doc ? { documentation: doc } : {}),
          ...(inMsg ? { input: resolveQName(input, inMsg) } : {}),
          ...(outMsg ? { output: resolveQName(output, outMsg) } : {}),
        };
      });
      this.portTypes.set(qnameKey({ ns: tns, local: attr(pt, "name") ?? "" }), ops);
    }
    for (const b of childrenNamed(defs, WSDL_NS, "binding")) {
      const binding = parseBinding(b, tns);
      if (binding) this.bindings.set(qnameKey(binding.name), binding);
    }
    for (const s of childrenNamed(defs, WSDL_NS, "service")) {
      const ports: ServicePort[] = [];
      for (const p of childrenNamed(s, WSDL_NS, "port")) {
        const address = p.children.find(
          (c) => c.local === "address" && (c.ns === WSDL_SOAP11_NS || c.ns === WSDL_SOAP12_NS),
        );
        const bindingRef = attr(p, "binding");
        if (!address || !bindingRef) continue; // HTTP GET/POST bindings are not SOAP
        ports.push({
          name: attr(p, "name") ?? "",
          binding: resolveQName(p, bindingRef),
          location: attr(address, "location"),
          version: address.ns === WSDL_SOAP12_NS ? "1.2" : "1.1",
        });
      }
      const doc = documentation(s);
      this.services.push({ name: attr(s, "name") ?? "", ...(doc ? { documentation: doc } : {}), ports });
    }
  }

  async schema(schema: XmlElement, loc: Location, chameleonTns: string | undefined): Promise<void> {
    const ownTns = attr(schema, "targetNamespace");
    const tns = ownTns ?? chameleonTns ?? "";
    const base = {
      targetNamespace: tns,
      elementQualified: attr(schema, "elementFormDefault") === "qualified",
      attributeQualified: attr(schema, "attributeFormDefault") === "qualified",
      chameleon: ownTns === undefined && chameleonTns !== undefined,
    };
    for (const child of schema.children) {
      if (child.ns !== XSD_NS) continue;
      const name = attr(child, "name");
      const key = qnameKey({ ns: tns, local: name ?? "" });
      const comp: SchemaComponent = { el: child, ...base };
      switch (child.local) {
        case "element":
          this.schemas.elements.set(key, comp);
          break;
        case "complexType":
          this.schemas.complexTypes.set(key, comp);
          break;
        case "simpleType":
          this.schemas.simpleTypes.set(key, comp);
          break;
        case "group":
          this.schemas.groups.set(key, comp);
          break;
        case "attributeGroup":
          this.schemas.attributeGroups.set(key, comp);
          break;
        case "attribute":
          this.schemas.attributes.set(key, comp);
          break;
        case "import":
        case "include":
        case "redefine": {
          const where = attr(child, "schemaLocation");
          if (!where) break; // an import without a location names a namespace defined elsewhere in this WSDL
          const next = resolveLocation(where, loc);
          if (!this.isNew(next)) break;
          const el = await this.read(next);
          if (el.ns !== XSD_NS || el.local !== "schema") {
            throw new WsdlError(`${showLocation(next)} is not an XML Schema document`);
          }
          await this.schema(el, next, child.local === "import" ? undefined : tns);
          break;
        }
        default:
          break;
      }
    }
  }
}

function locKey(loc: Location): string {
  return loc.kind === "file" ? `file:${loc.path}` : loc.url.href.replace(/#.*$/, "");
}

function parseBinding(b: XmlElement, tns: string): Binding | undefined {
  const soapBinding = b.children.find(
    (c) => c.local === "binding" && (c.ns === WSDL_SOAP11_NS || c.ns === WSDL_SOAP12_NS),
  );
  const type = attr(b, "type");
  if (!soapBinding || !type) return undefined;
  const soapNs = soapBinding.ns;
  const defaultStyle = attr(soapBinding, "style") === "rpc" ? "rpc" : "document";
  const operations = childrenNamed(b, WSDL_NS, "operation").map((op): BindingOperation => {
    const soapOp = firstChild(op, soapNs, "operation");
    const input = firstChild(op, WSDL_NS, "input");
    const body = input && firstChild(input, soapNs, "body");
    const style =
      soapOp && attr(soapOp, "style") ? (attr(soapOp, "style") === "rpc" ? "rpc" : "document") : defaultStyle;
    const namespace = body && attr(body, "namespace");
    return {
      name: attr(op, "name") ?? "",
      style,
      soapAction: (soapOp && attr(soapOp, "soapAction")) ?? "",
      encoded: body !== undefined && attr(body, "use") === "encoded",
      ...(namespace ? { namespace } : {}),
    };
  });
  return {
    name: { ns: tns, local: attr(b, "name") ?? "" },
    portType: resolveQName(b, type),
    version: soapNs === WSDL_SOAP12_NS ? "1.2" : "1.1",
    operations,
  };
}
