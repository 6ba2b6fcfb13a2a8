import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Logger } from "pino";
import { ConfigError, loadJsonFile } from "../config/load-file.js";
import { connectorFactories, factoryFor } from "../connectors/index.js";
import { GatewayError, isGatewayError, isPlainObject } from "../core/index.js";

const NAME = /^[a-zA-Z0-9-]+(?:_[a-zA-Z0-9-]+)*$/;
/** Spec files live in connectors/specs/ so that a JSON OpenAPI document is never read as a connector file. */
export const SPECS_DIR = "specs";
const SPEC_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.(json|ya?ml|wsdl|xsd|xml|sql)$/;

export function sha256(text: string | Buffer): string {
  return `sha256:${createHash("sha256").update(text).digest("hex")}`;
}

/** Writes a file atomically: a crash leaves either the old or the new content, never half. */
export function writeAtomic(file: string, content: string | Buffer): void {
  const tmp = join(file, "..", `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
  writeFileSync(tmp, content, { mode: 0o640 });
  renameSync(tmp, file);
}

/**
 * Validates a connector definition exactly as startup does — the kind's strict schema, then a
 * trial start (specs and WSDLs load, names are valid) — without touching connectors/. Returns the
 * canonical file text to write.
 */
export async function checkConnectorDefinition(
  connectorsDir: string,
  name: string,
  body: unknown,
  logger: Logger,
): Promise<string> {
  if (!NAME.test(name)) throw new GatewayError("INVALID_REQUEST", `invalid connector name "${name}"`);
  if (!isPlainObject(body))
    throw new GatewayError("INVALID_REQUEST", "the body must be a connector definition (a JSON object)");
  if (body.name !== undefined && body.name !== name) {
    throw new GatewayError(
      "INVALID_REQUEST",
      `the body's name "${String(body.name)}" differs from the URL's "${name}"`,
    );
  }
  const text = `${JSON.stringify({ ...body, name }, null, 2)}\n`;
  const factory = typeof body.kind === "string" ? factoryFor(body.kind) : undefined;
  if (!factory) {
    throw new GatewayError(
      "INVALID_REQUEST",
      `connectors/${name}.json: "kind" must be one of ${Object.keys(connectorFactories).join(", ")}`,
    );
  }
  // Validate through the same loader as startup, from a hidden temp file the loader never lists.
  const tmp = join(connectorsDir, `.${name}.json.${process.pid}.check`);
  writeFileSync(tmp, text);
  try {
    const { value } = loadJsonFile(tmp, factory.configSchema, process.env, `connectors/${name}.json`);
    const connector = await factory.create(value as never, { baseDir: connectorsDir, logger });
    await connector.close();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new GatewayError(
      "INVALID_REQUEST",
      isGatewayError(err) ? err.message : `connector "${name}" cannot start: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  } finally {
    rmSync(tmp, { force: true });
  }
  return text;
}

export function connectorFile(connectorsDir: string, name: string): string {
  if (!NAME.test(name)) throw new GatewayError("INVALID_REQUEST", `invalid connector name "${name}"`);
  return join(connectorsDir, `${name}.json`);
}

export function readIfExists(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, "utf8") : undefined;
}

/** Stores an uploaded spec/WSDL/SQL file under connectors/specs/; connector files refer to it as "specs/<file>". */
export function writeSpecFile(
  connectorsDir: string,
  filename: string,
  content: string,
): { path: string; digest: string } {
  if (!SPEC_FILE.test(filename) || filename.includes("..")) {
    throw new GatewayError(
      "INVALID_REQUEST",
      `invalid spec file name "${filename}": use letters, digits, . _ - and one of .json .yaml .yml .wsdl .xsd .xml .sql`,
    );
  }
  const dir = join(connectorsDir, SPECS_DIR);
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, filename), content);
  return { path: `${SPECS_DIR}/${filename}`, digest: sha256(content) };
}
