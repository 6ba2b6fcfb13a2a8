import { WsdlError, collectText, type SchemaComponent, type SchemaRegistry } from "./wsdl-loader.js";
import {
  XSD_NS,
  attr,
  childrenNamed,
  firstChild,
  qnameKey,
  resolveQName,
  type QName,
  type XmlElement,
} from "./xml-dom.js";

/**
 * The intermediate model every other part of the connector works from: the JSON Schema shown to
 * the agent, the XML written for a call and the typing of a response all derive from one tree,
 * so they cannot disagree. Namespaces live here (`ns`) and nowhere in what the agent sees.
 */
export type Primitive =
  | "string"
  | "boolean"
  /** Integers that always fit a JavaScript number (int, short, byte and their unsigned kin). */
  | "int"
  /** Integers that may not (long, unsignedLong, integer, …): numbers up to 2^53, strings beyond. */
  | "bigint"
  | "float"
  | "decimal"
  | "date"
  | "dateTime"
  | "time"
  | "duration"
  | "base64"
  | "hex"
  | "any";

export interface SimpleShape {
  readonly kind: "simple";
  readonly primitive: Primitive;
  /** The XSD built-in this derives from, for messages. */
  readonly builtin: string;
  readonly min?: bigint;
  readonly max?: bigint;
  readonly enum?: readonly string[];
  /** Anchored JavaScript regular expression source. */
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  /** Numeric bounds of float/decimal facets, as written in the schema. */
  readonly minimum?: string;
  readonly maximum?: string;
  readonly exclusiveMinimum?: string;
  readonly exclusiveMaximum?: string;
  readonly fractionDigits?: number;
  readonly totalDigits?: number;
  /** xsd:list: the value is an array of this shape's items, written space-separated. */
  readonly list?: boolean;
  readonly doc?: string;
}

export interface Field {
  /** JSON property name shown to the agent. */
  readonly prop: string;
  readonly xmlName: string;
  /** Namespace URI the element is written in; "" when unqualified. */
  readonly ns: string;
  readonly min: number;
  /** Infinity for unbounded. */
  readonly max: number;
  readonly nillable: boolean;
  readonly shape: Shape;
  readonly doc?: string;
  readonly default?: string;
  readonly fixed?: string;
}

export interface AttrField {
  readonly prop: string;
  readonly xmlName: string;
  readonly ns: string;
  readonly required: boolean;
  readonly shape: SimpleShape;
  readonly doc?: string;
  readonly default?: string;
  readonly fixed?: string;
}

export interface ComplexShape {
  readonly kind: "complex";
  readonly fields: readonly Field[];
  readonly attrs: readonly AttrField[];
  /** simpleContent: the element's own text, shown as the `value` property. */
  readonly text?: { readonly prop: string; readonly shape: SimpleShape };
  readonly doc?: string;
}

/** Where a recursive (or too deep) type was cut off. */
export interface CutShape {
  readonly kind: "cut";
  readonly typeName: string;
}

export type Shape = SimpleShape | ComplexShape | CutShape;

/** A named type may appear this many times on one path before its next occurrence is cut. */
export const MAX_TYPE_REPEAT = 2;
/** Nesting depth beyond which everything is cut, recursive or not. */
export const MAX_DEPTH = 12;
/** Fields per message beyond which expansion stops (a guard against exponential WSDLs). */
export const MAX_FIELDS = 4000;

const TWO = 2n;
const BUILTINS: Record<string, { primitive: Primitive; min?: bigint; max?: bigint }> = {
  string: { primitive: "string" },
  normalizedString: { primitive: "string" },
  token: { primitive: "string" },
  language: { primitive: "string" },
  Name: { primitive: "string" },
  NCName: { primitive: "string" },
  NMTOKEN: { primitive: "string" },
  NMTOKENS: { primitive: "string" },
  ID: { primitive: "string" },
  IDREF: { primitive: "string" },
  IDREFS: { primitive: "string" },
  ENTITY: { primitive: "string" },
  ENTITIES: { primitive: "string" },
  QName: { primitive: "string" },
  NOTATION: { primitive: "string" },
  anyURI: { primitive: "string" },
  gYear: { primitive: "string" },
  gYearMonth: { primitive: "string" },
  gMonth: { primitive: "string" },
  gMonthDay: { primitive: "string" },
  gDay: { primitive: "string" },
  boolean: { primitive: "boolean" },
  byte: { primitive: "int", min: -128n, max: 127n },
  short: { primitive: "int", min: -32768n, max: 32767n },
  int: { primitive: "int", min: -(TWO ** 31n), max: TWO ** 31n - 1n },
  unsignedByte: { primitive: "int", min: 0n, max: 255n },
  unsignedShort: { primitive: "int", min: 0n, max: 65535n },
  unsignedInt: { primitive: "int", min: 0n, max: TWO ** 32n - 1n },
  long: { primitive: "bigint", min: -(TWO ** 63n), max: TWO ** 63n - 1n },
  unsignedLong: { primitive: "bigint", min: 0n, max: TWO ** 64n - 1n },
  integer: { primitive: "bigint" },
  nonNegativeInteger: { primitive: "bigint", min: 0n },
  positiveInteger: { primitive: "bigint", min: 1n },
  nonPositiveInteger: { primitive: "bigint", max: 0n },
  negativeInteger: { primitive: "bigint", max: -1n },
  float: { primitive: "float" },
  double: { primitive: "float" },
  decimal: { primitive: "decimal" },
  date: { primitive: "date" },
  dateTime: { primitive: "dateTime" },
  dateTimeStamp: { primitive: "dateTime" },
  time: { primitive: "time" },
  duration: { primitive: "duration" },
  base64Binary: { primitive: "base64" },
  hexBinary: { primitive: "hex" },
  anySimpleType: { primitive: "any" },
  anyType: { primitive: "any" },
};

function docOf(el: XmlElement): string | undefined {
  const ann = firstChild(el, XSD_NS, "annotation");
  if (!ann) return undefined;
  const text = childrenNamed(ann, XSD_NS, "documentation")
    .map((d) => collectText(d).replace(/\s+/g, " ").trim())
    .filter((t) => t !== "")
    .join(" ");
  return text === "" ? undefined : text;
}

/** Converts an XSD pattern (implicitly anchored, its own escapes) to JavaScript, or undefined if it cannot. */
export function xsdPatternToJs(pattern: string): string | undefined {
  // \i, \c (XML name characters) and class subtraction have no JavaScript equivalent.
  if (/\\[iIcC]|-\[/.test(pattern)) return undefined;
  try {
    const source = `^(?:${pattern})$`;
    new RegExp(source, "u");
    return source;
  } catch {
    return undefined;
  }
}

interface Ctx {
  readonly schemas: SchemaRegistry;
  readonly stack: string[];
  fields: number;
}

export class ShapeBuilder {
  private readonly schemas: SchemaRegistry;

  constructor(schemas: SchemaRegistry) {
    this.schemas = schemas;
  }

  /** The field for a global element declaration (a document/literal message part). */
  globalElement(name: QName): Field {
    const ctx: Ctx = { schemas: this.schemas, stack: [], fields: 0 };
    const comp = this.lookup(this.schemas.elements, name, "element");
    return this.elementField(comp.el, comp, 1, 1, ctx, true)!;
  }

  /** A field of a named type (an rpc part, or a document part declared with type=). */
  typedField(prop: string, type: QName): Field {
    const ctx: Ctx = { schemas: this.schemas, stack: [], fields: 0 };
    return { prop, xmlName: prop, ns: "", min: 1, max: 1, nillable: false, shape: this.typeRef(type, ctx) };
  }

  private lookup(map: Map<string, SchemaComponent>, name: QName, what: string): SchemaComponent {
    const comp = map.get(qnameKey(name));
    if (!comp)
      throw new WsdlError(
        `${what} ${name.local} (namespace "${name.ns}") is not defined in the WSDL's schemas`,
      );
    return comp;
  }

  private ref(comp: SchemaComponent, el: XmlElement, value: string): QName {
    const q = resolveQName(el, value);
    return q.ns === "" && comp.chameleon ? { ns: comp.targetNamespace, local: q.local } : q;
  }

  private elementField(
    el: XmlElement,
    comp: SchemaComponent,
    min: number,
    max: number,
    ctx: Ctx,
    global: boolean,
  ): Field | undefined {
    const refAttr = attr(el, "ref");
    if (refAttr) {
      const name = this.ref(comp, el, refAttr);
      const target = this.lookup(ctx.schemas.elements, name, "element");
      const key = `e:${qnameKey(name)}`;
      if (this.tooDeep(key, ctx))
        return this.cutField(name.local, name.local, target.targetNamespace, min, max);
      ctx.stack.push(key);
      try {
        const inner = this.elementField(target.el, target, min, max, ctx, true);
        const doc = docOf(el);
        return inner && doc ? { ...inner, doc } : inner;
      } finally {
        ctx.stack.pop();
      }
    }
    const xmlName = attr(el, "name");
    if (!xmlName) return undefined;
    const form = attr(el, "form");
    const qualified = global || (form ? form === "qualified" : comp.elementQualified);
    const ns = qualified ? comp.targetNamespace : "";
    if (++ctx.fields > MAX_FIELDS || ctx.stack.length >= MAX_DEPTH)
      return this.cutField(xmlName, xmlName, ns, min, max);
    const typeAttr = attr(el, "type");
    let shape: Shape;
    if (typeAttr) shape = this.typeRef(this.ref(comp, el, typeAttr), ctx);
    else {
      const ct = firstChild(el, XSD_NS, "complexType");
      const st = firstChild(el, XSD_NS, "simpleType");
      if (ct) shape = this.complexType(ct, comp, ctx);
      else if (st) shape = this.simpleType(st, comp, ctx);
      else shape = builtin("anyType");
    }
    const doc = docOf(el) ?? shapeDoc(shape);
    const dflt = attr(el, "default");
    const fixed = attr(el, "fixed");
    return {
      prop: xmlName,
      xmlName,
      ns,
      min,
      max,
      nillable: attr(el, "nillable") === "true",
      shape,
      ...(doc ? { doc } : {}),
      ...(dflt !== undefined ? { default: dflt } : {}),
      ...(fixed !== undefined ? { fixed } : {}),
    };
  }

  private cutField(prop: string, xmlName: string, ns: string, min: number, max: number): Field {
    return { prop, xmlName, ns, min, max, nillable: false, shape: { kind: "cut", typeName: xmlName } };
  }

  private tooDeep(key: string, ctx: Ctx): boolean {
    return ctx.stack.filter((k) => k === key).length >= MAX_TYPE_REPEAT || ctx.stack.length >= MAX_DEPTH;
  }

  private typeRef(name: QName, ctx: Ctx): Shape {
    if (name.ns === XSD_NS) return builtin(name.local);
    const key = qnameKey(name);
    const simple = ctx.schemas.simpleTypes.get(key);
    if (simple) return this.simpleType(simple.el, simple, ctx);
    const complex = this.lookup(ctx.schemas.complexTypes, name, "type");
    const stackKey = `t:${key}`;
    if (this.tooDeep(stackKey, ctx)) return { kind: "cut", typeName: name.local };
    ctx.stack.push(stackKey);
    try {
      return this.complexType(complex.el, complex, ctx);
    } finally {
      ctx.stack.pop();
    }
  }

  private simpleTypeRef(name: QName, ctx: Ctx): SimpleShape {
    const shape = this.typeRef(name, ctx);
    if (shape.kind === "simple") return shape;
    if (shape.kind === "complex" && shape.text) return shape.text.shape;
    return builtin("string");
  }

  simpleType(el: XmlElement, comp: SchemaComponent, ctx: Ctx): SimpleShape {
    const doc = docOf(el);
    const withDoc = (s: SimpleShape): SimpleShape => (doc ? { ...s, doc } : s);
    const restriction = firstChild(el, XSD_NS, "restriction");
    if (restriction) return withDoc(this.restrict(restriction, comp, ctx));
    const list = firstChild(el, XSD_NS, "list");
    if (list) {
      const itemType = attr(list, "itemType");
      const inline = firstChild(list, XSD_NS, "simpleType");
      const item = itemType
        ? this.simpleTypeRef(this.ref(comp, list, itemType), ctx)
        : inline
          ? this.simpleType(inline, comp, ctx)
          : builtin("string");
      return withDoc({ ...item, list: true });
    }
    const union = firstChild(el, XSD_NS, "union");
    if (union) {
      const members: SimpleShape[] = [
        ...(attr(union, "memberTypes") ?? "")
          .split(/\s+/)
          .filter((m) => m !== "")
          .map((m) => this.simpleTypeRef(this.ref(comp, union, m), ctx)),
        ...childrenNamed(union, XSD_NS, "simpleType").map((s) => this.simpleType(s, comp, ctx)),
      ];
      // A union of enumerations is one enumeration; anything else is only known to be text.
      if (members.length > 0 && members.every((m) => m.enum !== undefined && !m.list)) {
        return withDoc({
          kind: "simple",
          primitive: "string",
          builtin: "string",
          enum: [...new Set(members.flatMap((m) => m.enum!))],
        });
      }
      return withDoc(builtin("string"));
    }
    return withDoc(builtin("string"));
  }

  private restrict(restriction: XmlElement, comp: SchemaComponent, ctx: Ctx): SimpleShape {
    const baseAttr = attr(restriction, "base");
    const inline = firstChild(restriction, XSD_NS, "simpleType");
    const base: SimpleShape = baseAttr
      ? this.simpleTypeRef(this.ref(comp, restriction, baseAttr), ctx)
      : inline
        ? this.simpleType(inline, comp, ctx)
        : builtin("string");
    return applyFacets(base, restriction);
  }

  complexType(el: XmlElement, comp: SchemaComponent, ctx: Ctx): ComplexShape {
    const doc = docOf(el);
    const fields: Field[] = [];
    const attrs: AttrField[] = [];
    let text: SimpleShape | undefined;
    const simpleContent = firstChild(el, XSD_NS, "simpleContent");
    const complexContent = firstChild(el, XSD_NS, "complexContent");
    if (simpleContent) {
      const derivation =
        firstChild(simpleContent, XSD_NS, "extension") ?? firstChild(simpleContent, XSD_NS, "restriction");
      if (derivation) {
        const baseAttr = attr(derivation, "base");
        if (baseAttr) {
          const base = this.typeRef(this.ref(comp, derivation, baseAttr), ctx);
          if (base.kind === "simple") text = base;
          else if (base.kind === "complex") {
            text = base.text?.shape;
            attrs.push(...base.attrs);
          }
        }
        if (text && derivation.local === "restriction") text = applyFacets(text, derivation);
        this.attributes(derivation, comp, ctx, attrs);
      }
    } else if (complexContent) {
      const ext = firstChild(complexContent, XSD_NS, "extension");
      const res = firstChild(complexContent, XSD_NS, "restriction");
      if (ext) {
        const baseAttr = attr(ext, "base");
        if (baseAttr) {
          const base = this.typeRef(this.ref(comp, ext, baseAttr), ctx);
          if (base.kind === "complex") {
            fields.push(...base.fields);
            attrs.push(...base.attrs);
          }
        }
        this.particles(ext, comp, 1, 1, ctx, fields);
        this.attributes(ext, comp, ctx, attrs);
      } else if (res) {
        // A restriction restates the content it keeps; attributes are inherited unless restated.
        const baseAttr = attr(res, "base");
        if (baseAttr) {
          const base = this.typeRef(this.ref(comp, res, baseAttr), ctx);
          if (base.kind === "complex") attrs.push(...base.attrs);
        }
        this.particles(res, comp, 1, 1, ctx, fields);
        this.attributes(res, comp, ctx, attrs);
      }
    } else {
      this.particles(el, comp, 1, 1, ctx, fields);
      this.attributes(el, comp, ctx, attrs);
    }
    return nameProperties(fields, dedupeAttrs(attrs), text, doc);
  }

  private particles(
    parent: XmlElement,
    comp: SchemaComponent,
    min: number,
    max: number,
    ctx: Ctx,
    out: Field[],
  ): void {
    for (const child of parent.children) {
      if (child.ns !== XSD_NS) continue;
      const cMin = occurs(attr(child, "minOccurs"), 1);
      const cMax = occurs(attr(child, "maxOccurs"), 1);
      switch (child.local) {
        case "element": {
          const f = this.elementField(child, comp, min * cMin, max * cMax, ctx, false);
          if (f) out.push(f);
          break;
        }
        case "sequence":
        case "all":
          this.particles(child, comp, min * cMin, max * cMax, ctx, out);
          break;
        case "choice": {
          // Only one branch is sent, so no branch is required on its own.
          const branches = child.children.filter((c) => c.ns === XSD_NS && c.local !== "annotation").length;
          this.particles(child, comp, branches > 1 ? 0 : min * cMin, max * cMax, ctx, out);
          break;
        }
        case "group": {
          const ref = attr(child, "ref");
          if (!ref) break;
          const group = this.lookup(ctx.schemas.groups, this.ref(comp, child, ref), "group");
          const groupKey = `g:${ref}`;
          if (ctx.stack.includes(groupKey)) break;
          ctx.stack.push(groupKey);
          try {
            this.particles(group.el, group, min * cMin, max * cMax, ctx, out);
          } finally {
            ctx.stack.pop();
          }
          break;
        }
        default:
          break; // xsd:any, annotations and attributes are handled elsewhere or not sent
      }
    }
  }

  private attributes(parent: XmlElement, comp: SchemaComponent, ctx: Ctx, out: AttrField[]): void {
    for (const child of parent.children) {
      if (child.ns !== XSD_NS) continue;
      if (child.local === "attribute") {
        const a = this.attribute(child, comp, ctx);
        if (a) out.push(a);
      } else if (child.local === "attributeGroup") {
        const ref = attr(child, "ref");
        if (!ref) continue;
        const group = this.lookup(ctx.schemas.attributeGroups, this.ref(comp, child, ref), "attributeGroup");
        this.attributes(group.el, group, ctx, out);
      }
    }
  }

  private attribute(el: XmlElement, comp: SchemaComponent, ctx: Ctx): AttrField | undefined {
    if (attr(el, "use") === "prohibited") return undefined;
    const required = attr(el, "use") === "required";
    const refAttr = attr(el, "ref");
    let decl = el;
    let declComp = comp;
    let ns: string;
    if (refAttr) {
      const name = this.ref(comp, el, refAttr);
      if (name.ns === "http://www.w3.org/XML/1998/namespace") return undefined; // xml:lang and friends
      declComp = this.lookup(ctx.schemas.attributes, name, "attribute");
      decl = declComp.el;
      ns = declComp.targetNamespace;
    } else {
      const form = attr(el, "form");
      ns = (form ? form === "qualified" : comp.attributeQualified) ? comp.targetNamespace : "";
    }
    const xmlName = attr(decl, "name");
    if (!xmlName) return undefined;
    const typeAttr = attr(decl, "type");
    const inline = firstChild(decl, XSD_NS, "simpleType");
    const shape = typeAttr
      ? this.simpleTypeRef(this.ref(declComp, decl, typeAttr), ctx)
      : inline
        ? this.simpleType(inline, declComp, ctx)
        : builtin("string");
    const doc = docOf(el) ?? docOf(decl) ?? shape.doc;
    const dflt = attr(el, "default") ?? attr(decl, "default");
    const fixed = attr(el, "fixed") ?? attr(decl, "fixed");
    return {
      prop: xmlName,
      xmlName,
      ns,
      required,
      shape,
      ...(doc ? { doc } : {}),
      ...(dflt !== undefined ? { default: dflt } : {}),
      ...(fixed !== undefined ? { fixed } : {}),
    };
  }
}

function occurs(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === "unbounded") return Infinity;
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export function builtin(local: string): SimpleShape {
  const b = BUILTINS[local] ?? { primitive: "string" as const };
  return {
    kind: "simple",
    primitive: b.primitive,
    builtin: local,
    ...(b.min !== undefined ? { min: b.min } : {}),
    ...(b.max !== undefined ? { max: b.max } : {}),
    // The XSD list types are lists of tokens.
    ...(local === "NMTOKENS" || local === "IDREFS" || local === "ENTITIES" ? { list: true } : {}),
  };
}

function shapeDoc(shape: Shape): string | undefined {
  return shape.kind === "cut" ? undefined : shape.doc;
}

function facetValue(restriction: XmlElement, name: string): string | undefined {
  const f = firstChild(restriction, XSD_NS, name);
  return f ? attr(f, "value") : undefined;
}

function toBigInt(value: string | undefined): bigint | undefined {
  if (value === undefined || !/^[+-]?\d+$/.test(value.trim())) return undefined;
  return BigInt(value.trim());
}

function applyFacets(base: SimpleShape, restriction: XmlElement): SimpleShape {
  const enumValues = childrenNamed(restriction, XSD_NS, "enumeration").map((e) => attr(e, "value") ?? "");
  const patterns = childrenNamed(restriction, XSD_NS, "pattern")
    .map((p) => attr(p, "value"))
    .filter((p): p is string => p !== undefined);
  const out: { -readonly [K in keyof SimpleShape]: SimpleShape[K] } = { ...base };
  delete out.doc;
  if (enumValues.length > 0) out.enum = enumValues;
  if (patterns.length > 0) {
    // Several patterns in one step are alternatives (XSD 1.0 §4.3.4.3).
    const js = xsdPatternToJs(patterns.join("|"));
    if (js) out.pattern = js;
  }
  const length = facetValue(restriction, "length");
  const minLength = length ?? facetValue(restriction, "minLength");
  const maxLength = length ?? facetValue(restriction, "maxLength");
  if (minLength !== undefined) out.minLength = Number(minLength);
  if (maxLength !== undefined) out.maxLength = Number(maxLength);
  const fraction = facetValue(restriction, "fractionDigits");
  const total = facetValue(restriction, "totalDigits");
  if (fraction !== undefined) out.fractionDigits = Number(fraction);
  if (total !== undefined) out.totalDigits = Number(total);
  const minInc = facetValue(restriction, "minInclusive");
  const maxInc = facetValue(restriction, "maxInclusive");
  const minExc = facetValue(restriction, "minExclusive");
  const maxExc = facetValue(restriction, "maxExclusive");
  if (base.primitive === "int" || base.primitive === "bigint") {
    const lo = toBigInt(minInc) ?? (toBigInt(minExc) !== undefined ? toBigInt(minExc)! + 1n : undefined);
    const hi = toBigInt(maxInc) ?? (toBigInt(maxExc) !== undefined ? toBigInt(maxExc)! - 1n : undefined);
    if (lo !== undefined && (out.min === undefined || lo > out.min)) out.min = lo;
    if (hi !== undefined && (out.max === undefined || hi < out.max)) out.max = hi;
  } else {
    if (minInc !== undefined) out.minimum = minInc;
    if (maxInc !== undefined) out.maximum = maxInc;
    if (minExc !== undefined) out.exclusiveMinimum = minExc;
    if (maxExc !== undefined) out.exclusiveMaximum = maxExc;
  }
  return out;
}

function dedupeAttrs(attrs: AttrField[]): AttrField[] {
  const seen = new Map<string, AttrField>();
  for (const a of attrs) seen.set(`{${a.ns}}${a.xmlName}`, a); // a restated attribute replaces the inherited one
  return [...seen.values()];
}

/**
 * Property names are local names. The element's text (simpleContent) is `value`; an attribute
 * whose name is taken by an element or the text becomes `@name`; any remaining clash gets a
 * numeric suffix. Deterministic, so a tool's schema is stable across restarts.
 */
function nameProperties(
  fields: Field[],
  attrs: AttrField[],
  text: SimpleShape | undefined,
  doc: string | undefined,
): ComplexShape {
  const used = new Set<string>();
  const unique = (wanted: string): string => {
    let name = wanted;
    for (let i = 2; used.has(name); i++) name = `${wanted}_${i}`;
    used.add(name);
    return name;
  };
  const textProp = text ? unique("value") : undefined;
  const namedFields = fields.map((f) => ({ ...f, prop: unique(f.xmlName) }));
  const namedAttrs = attrs.map((a) => ({
    ...a,
    prop: unique(used.has(a.xmlName) ? `@${a.xmlName}` : a.xmlName),
  }));
  return {
    kind: "complex",
    fields: namedFields,
    attrs: namedAttrs,
    ...(text && textProp ? { text: { prop: textProp, shape: text } } : {}),
    ...(doc ? { doc } : {}),
  };
}
