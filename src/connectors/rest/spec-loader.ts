import { isAbsolute, relative, resolve } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { GatewayError } from "../../core/index.js";
import { validateAgainstMetaSchema } from "./spec-validate.js";

export type SpecDocument = Record<string, unknown>;

export interface LoadedSpec {
  document: SpecDocument;
  /** Where the spec came from, as shown in messages (relative path or URL). */
  shownAs: string;
  /** Absolute path or URL, for resolving relative server URLs. */
  location: string;
  version: "2.0" | "3.0" | "3.1";
}

const SPEC_FETCH_TIMEOUT_MS = 15_000;

export function isUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec);
}

/** The URL, or the absolute path of a spec file (relative ones resolve against `baseDir`). */
export function specLocation(spec: string, baseDir: string): string {
  return isUrl(spec) ? spec : isAbsolute(spec) ? spec : resolve(baseDir, spec);
}

/**
 * Parses, dereferences and validates a spec. Cycles stay as object cycles (`circular: true`);
 * the schema converter bounds them, so a recursive `Node` schema cannot hang the loader.
 */
export async function loadSpec(connector: string, spec: string, baseDir: string): Promise<LoadedSpec> {
  const location = specLocation(spec, baseDir);
  const shownAs = isUrl(spec) ? spec : displayPath(location);
  let document: unknown;
  try {
    document = await new SwaggerParser().validate(location, {
      dereference: { circular: true },
      validate: { schema: validateAgainstMetaSchema },
      resolve: {
        http: {
          timeout: SPEC_FETCH_TIMEOUT_MS,
          redirects: 3,
          // The library's own guard refuses every internal host, including the one the admin
          // configured; ours trusts the spec's own origin and refuses other internal hosts.
          safeUrlResolver: false,
          canRead: (file: { url: string }) =>
            mayFetch(file.url, isUrl(spec) ? new URL(spec).origin : undefined),
        },
      },
    } as unknown as SwaggerParser.Options);
  } catch (err) {
    throw new GatewayError(
      "CONFIG_INVALID",
      `connector "${connector}" (rest): invalid OpenAPI spec ${shownAs}: ${describeSpecError(err)}`,
      { cause: err, details: { spec: shownAs } },
    );
  }
  const doc = document as SpecDocument;
  const version =
    typeof doc.swagger === "string" ? "2.0" : String(doc.openapi).startsWith("3.1") ? "3.1" : "3.0";
  return { document: doc, shownAs, location, version };
}

/**
 * `$ref`s may point at other documents. Following one to an internal address would let a spec
 * make the gateway probe its own network (cloud metadata endpoints above all).
 */
export function mayFetch(url: string, trustedOrigin: string | undefined): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return false;
  if (trustedOrigin !== undefined && u.origin === trustedOrigin) return true;
  return !isInternalHost(u.hostname);
}

function isInternalHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost") || h.endsWith(".internal") || h.endsWith(".local"))
    return true;
  if (/^(127\.|10\.|0\.|169\.254\.|192\.168\.)/.test(h)) return true;
  if (/^172\.(1[6-9]|2\d|3[01])\./.test(h)) return true;
  if (/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(h)) return true;
  return h === "::1" || h === "::" || /^(fc|fd|fe80:)/.test(h) || h.startsWith("::ffff:");
}

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel === "" || rel.startsWith("..") ? file : rel;
}

/**
 * swagger-parser reports schema violations as one line per JSON pointer; keep the first few so
 * the admin sees where the problem is without a wall of text.
 */
export function describeSpecError(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const lines = raw
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  if (lines.length === 0) return "unknown error";
  const shown = lines.slice(0, 6);
  const more = lines.length > shown.length ? ` (and ${lines.length - shown.length} more)` : "";
  const prefix = /ENOENT|no such file/i.test(raw) ? "file not found: " : "";
  return `${prefix}${shown.join("; ")}${more}`.slice(0, 2000);
}
