import { readFileSync } from "node:fs";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import soap from "soap";
import { fixture } from "../../helpers/fixtures.js";

export const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
export const NUMBER_CONVERSION_WSDL = fixture("number-conversion.wsdl");

export interface SoapTestServer {
  readonly url: string;
  readonly soap: soap.Server;
  /** Headers and raw bodies of every request the SOAP path received, in order. */
  readonly received: { headers: IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

export interface SoapTestServerOptions {
  wsdlFile: string;
  path: string;
  services: soap.IServices;
  /** Answer SOAP 1.2 envelopes (faults become Code/Reason). */
  soap12?: boolean;
  authenticate?: soap.Server["authenticate"];
  /** Requests on other paths (raw HTTP behaviour: huge bodies, HTML errors, garbage). */
  other?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** A real soap.listen server on 127.0.0.1, port 0. */
export async function startSoapServer(opts: SoapTestServerOptions): Promise<SoapTestServer> {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const http: Server = createServer((req, res) => {
    if (opts.other) opts.other(req, res);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const server = soap.listen(http, {
    path: opts.path,
    services: opts.services,
    xml: readFileSync(opts.wsdlFile, "utf8"),
    // The base its xsd:include / xsd:import locations resolve against.
    uri: opts.wsdlFile,
  });
  server.log = (type: string, data: unknown, req: IncomingMessage | undefined) => {
    if (type === "received" && req) received.push({ headers: req.headers, body: String(data) });
  };
  // soap's server has no public switch for SOAP 1.2 answers; its WSDL options do.
  if (opts.soap12)
    (server as unknown as { wsdl: { options: Record<string, unknown> } }).wsdl.options.forceSoap12Headers =
      true;
  if (opts.authenticate) server.authenticate = opts.authenticate;
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${opts.path}`,
    soap: server,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}
