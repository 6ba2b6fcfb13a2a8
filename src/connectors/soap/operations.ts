import { WsdlError, type SoapVersion, type Wsdl } from "./wsdl-loader.js";
import { qnameKey, type QName } from "./xml-dom.js";
import { ShapeBuilder, type Field } from "./xsd-model.js";

/**
 * One message as the connector sees it. `roots` are the message parts. When `unwrap` is set the
 * single part is a complex element whose children are the tool's arguments (document/literal
 * "wrapped", by far the most common style); otherwise each part is one argument. For rpc style
 * the parts are written inside a wrapper element that soap adds.
 */
export interface MessageModel {
  readonly roots: readonly Field[];
  readonly unwrap: boolean;
  readonly rpc: boolean;
}

export interface OperationModel {
  readonly name: string;
  readonly documentation?: string;
  readonly service: string;
  readonly port: string;
  readonly version: SoapVersion;
  readonly location: string | undefined;
  readonly soapAction: string;
  readonly input: MessageModel;
  readonly output: MessageModel | undefined;
}

export interface Selection {
  readonly service?: string | undefined;
  readonly port?: string | undefined;
  readonly soapVersion: SoapVersion;
}

export interface SelectedOperations {
  readonly operations: OperationModel[];
  /** Operations left out, with why (logged at startup). */
  readonly skipped: { name: string; reason: string }[];
}

/**
 * Picks the port for every operation: ports of the preferred SOAP version first, then document
 * order, and an operation already offered by an earlier port is never offered again (a WSDL
 * with a SOAP 1.1 and a SOAP 1.2 binding of one portType must not yield every tool twice).
 */
export function selectOperations(wsdl: Wsdl, sel: Selection): SelectedOperations {
  const services = sel.service ? wsdl.services.filter((s) => s.name === sel.service) : wsdl.services;
  if (sel.service && services.length === 0) {
    throw new WsdlError(
      `service "${sel.service}" is not in the WSDL (it has: ${wsdl.services.map((s) => s.name).join(", ") || "none"})`,
    );
  }
  const ports = services.flatMap((s) => s.ports.map((p) => ({ service: s, port: p })));
  const chosen = sel.port ? ports.filter((p) => p.port.name === sel.port) : ports;
  if (sel.port && chosen.length === 0) {
    throw new WsdlError(
      `port "${sel.port}" is not in the WSDL (it has: ${ports.map((p) => p.port.name).join(", ") || "none"})`,
    );
  }
  if (chosen.length === 0)
    throw new WsdlError("the WSDL has no SOAP port (no service/port with a soap:address)");
  const ordered = [
    ...chosen.filter((p) => p.port.version === sel.soapVersion),
    ...chosen.filter((p) => p.port.version !== sel.soapVersion),
  ];
  const builder = new ShapeBuilder(wsdl.schemas);
  const seen = new Set<string>();
  const operations: OperationModel[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const { service, port } of ordered) {
    const binding = wsdl.bindings.get(qnameKey(port.binding));
    if (!binding)
      throw new WsdlError(`port "${port.name}" names binding ${port.binding.local}, which is not defined`);
    const portType = wsdl.portTypes.get(qnameKey(binding.portType));
    if (!portType)
      throw new WsdlError(
        `binding "${binding.name.local}" names portType ${binding.portType.local}, which is not defined`,
      );
    for (const bop of binding.operations) {
      if (seen.has(bop.name)) continue;
      seen.add(bop.name);
      const pop = portType.find((o) => o.name === bop.name);
      if (!pop)
        throw new WsdlError(
          `operation "${bop.name}" of binding "${binding.name.local}" is not in its portType`,
        );
      if (bop.encoded) {
        skipped.push({
          name: bop.name,
          reason: 'SOAP encoding (use="encoded") is not supported; only literal',
        });
        continue;
      }
      if (!pop.input) {
        skipped.push({ name: bop.name, reason: "notification operations (output only) cannot be called" });
        continue;
      }
      operations.push({
        name: bop.name,
        ...(pop.documentation ? { documentation: pop.documentation } : {}),
        service: service.name,
        port: port.name,
        version: binding.version,
        location: port.location,
        soapAction: bop.soapAction,
        input: messageModel(wsdl, builder, pop.input, bop.style === "rpc", `operation "${bop.name}" input`),
        output: pop.output
          ? messageModel(wsdl, builder, pop.output, bop.style === "rpc", `operation "${bop.name}" output`)
          : undefined,
      });
    }
  }
  return { operations, skipped };
}

function messageModel(
  wsdl: Wsdl,
  builder: ShapeBuilder,
  name: QName,
  rpc: boolean,
  what: string,
): MessageModel {
  const parts = wsdl.messages.get(qnameKey(name));
  if (!parts) throw new WsdlError(`${what}: message ${name.local} is not defined`);
  const roots = parts.map((p): Field => {
    try {
      if (p.element) {
        const f = builder.globalElement(p.element);
        return rpc || parts.length > 1 ? { ...f, prop: p.name } : f;
      }
      if (p.type) return builder.typedField(p.name, p.type);
    } catch (err) {
      if (err instanceof WsdlError) throw new WsdlError(`${what}: ${err.message}`, { cause: err });
      throw err;
    }
    throw new WsdlError(`${what}: part "${p.name}" has neither element nor type`);
  });
  return { roots, unwrap: !rpc && roots.length === 1 && roots[0]!.shape.kind === "complex", rpc };
}
