import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { z } from "zod";
import { ConfigError, displayPath, loadJsonFile, readJsonSource, type ConfigProblem } from "./load-file.js";
import { gatewayConfigSchema, type GatewayConfig } from "./schema.js";

export interface LoadedGatewayConfig {
  config: GatewayConfig;
  /** The config file, absolute. */
  file: string;
  /** Directory of the config file; relative paths resolve against it. */
  dir: string;
  connectorsDir: string;
  scopesDir: string;
  auditDir: string;
}

export const DEFAULT_CONFIG_FILE = "mcp.config.json";

export function loadGatewayConfig(
  configPath: string = DEFAULT_CONFIG_FILE,
  env: NodeJS.ProcessEnv = process.env,
): LoadedGatewayConfig {
  const file = resolve(configPath);
  const { value: config } = loadJsonFile(file, gatewayConfigSchema, env);
  const dir = dirname(file);
  return {
    config,
    file,
    dir,
    connectorsDir: resolve(dir, config.paths.connectors),
    scopesDir: resolve(dir, config.paths.scopes),
    auditDir: resolve(dir, config.paths.audit),
  };
}

/** `*.json` files of a directory, sorted so that load order (and so tool order) is deterministic. */
export function jsonFilesIn(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith(".json") && !n.startsWith("."))
    .sort()
    .map((n) => join(dir, n));
}

export interface ConnectorFileEntry<C = unknown> {
  file: string;
  kind: string;
  name: string;
  config: C;
}

/** What the loader needs of the connector registry; kept structural so config never imports connectors. */
export type KindSchemas = (kind: string) => z.ZodType | undefined;

/**
 * Loads every connector file. A file with an unknown `kind` or an invalid body is a problem naming
 * it; two files claiming one connector name is a problem naming both. All problems are raised
 * together.
 */
export function loadConnectorFiles(
  dir: string,
  schemaFor: KindSchemas,
  knownKinds: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ConnectorFileEntry[] {
  const problems: ConfigProblem[] = [];
  const entries: ConnectorFileEntry[] = [];
  const byName = new Map<string, string>();
  for (const file of jsonFilesIn(dir)) {
    const shown = displayPath(file);
    try {
      const source = readJsonSource(file, shown);
      const raw: unknown = JSON.parse(source.text);
      const kind =
        typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>).kind : undefined;
      const schema = typeof kind === "string" ? schemaFor(kind) : undefined;
      if (!schema) {
        problems.push(
          source.problem(
            ["kind"],
            kind === undefined
              ? `required "kind" is missing (one of: ${knownKinds.join(", ")})`
              : `unknown connector kind ${JSON.stringify(kind)} (expected one of: ${knownKinds.join(", ")})`,
          ),
        );
        continue;
      }
      const { value } = loadJsonFile(file, schema, env, shown);
      const name = (value as { name: string }).name;
      const other = byName.get(name);
      if (other !== undefined) {
        problems.push(source.problem(["name"], `connector name "${name}" is already used by ${other}`));
        continue;
      }
      byName.set(name, shown);
      entries.push({ file: shown, kind: kind as string, name, config: value });
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return entries;
}
