import { readFileSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, formatProblem } from "../config/load-file.js";
import { loadConnectorFiles, loadGatewayConfig } from "../config/load.js";
import { connectorFactories, factoryFor } from "../connectors/index.js";
import { createLogger, safeJson } from "../core/index.js";
import { checkConnectorDefinition, connectorFile, readIfExists, writeAtomic } from "./connector-files.js";

export interface ConnectorsCliEnv {
  configPath: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

export const CONNECTORS_USAGE = `Usage:
  portcullis connectors list [--json]
  portcullis connectors add <file.json> [--name NAME]
  portcullis connectors remove <name>

Offline (default) the command edits connectors/ directly, validating exactly as the gateway does
at startup; a running gateway picks the change up by hot reload. With --url it asks a running
gateway's admin API instead:
  --url http://127.0.0.1:8080   the gateway (its /admin endpoints)
  --token JWT                   an admin-scope token (default: $PORTCULLIS_TOKEN)
`;

/** `portcullis connectors list|add|remove`, offline or against a running gateway. */
export async function runConnectorsCommand(argv: string[], io: ConnectorsCliEnv): Promise<number> {
  const env = io.env ?? process.env;
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      url: { type: "string" },
      token: { type: "string" },
      name: { type: "string" },
    },
  });
  const [action, arg] = positionals;
  const token = values.token ?? env.PORTCULLIS_TOKEN;

  if (values.url !== undefined) return remote(values.url, token, action, arg, values, io);

  const loaded = loadGatewayConfig(io.configPath, env);
  const dir = loaded.connectorsDir;
  switch (action) {
    case "list": {
      const entries = loadConnectorFiles(
        dir,
        (k) => factoryFor(k)?.configSchema,
        Object.keys(connectorFactories),
        env,
      );
      if (values.json)
        io.stdout.write(
          `${safeJson(
            entries.map((e) => ({ name: e.name, kind: e.kind, file: e.file })),
            2,
          )}\n`,
        );
      else for (const e of entries) io.stdout.write(`${e.name.padEnd(24)} ${e.kind.padEnd(6)} ${e.file}\n`);
      return 0;
    }
    case "add": {
      if (arg === undefined) throw usage("add needs a connector file");
      const body = JSON.parse(readFileSync(arg, "utf8")) as Record<string, unknown>;
      const name = values.name ?? (typeof body.name === "string" ? body.name : basename(arg, ".json"));
      const text = await checkConnectorDefinition(dir, name, { ...body, name }, createLogger("warn"));
      const file = connectorFile(dir, name);
      const existed = readIfExists(file) !== undefined;
      writeAtomic(file, text);
      io.stdout.write(`${existed ? "replaced" : "added"} connector "${name}" (${file})\n`);
      return 0;
    }
    case "remove": {
      if (arg === undefined) throw usage("remove needs a connector name");
      const file = connectorFile(dir, arg);
      if (readIfExists(file) === undefined) {
        io.stderr.write(`no connector "${arg}" in ${dir}\n`);
        return 1;
      }
      rmSync(file);
      io.stdout.write(`removed connector "${arg}"\n`);
      return 0;
    }
    default:
      io.stderr.write(CONNECTORS_USAGE);
      return 2;
  }
}

async function remote(
  base: string,
  token: string | undefined,
  action: string | undefined,
  arg: string | undefined,
  values: { json?: boolean | undefined; name?: string | undefined },
  io: ConnectorsCliEnv,
): Promise<number> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const call = async (method: string, path: string, body?: unknown): Promise<number> => {
    const res = await fetch(new URL(path, base), {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    (res.ok ? io.stdout : io.stderr).write(`${text}\n`);
    return res.ok ? 0 : 1;
  };
  switch (action) {
    case "list":
      return call("GET", "/admin/connectors");
    case "add": {
      if (arg === undefined) throw usage("add needs a connector file");
      const body = JSON.parse(readFileSync(arg, "utf8")) as Record<string, unknown>;
      const name = values.name ?? (typeof body.name === "string" ? body.name : basename(arg, ".json"));
      return call("PUT", `/admin/connectors/${encodeURIComponent(name)}`, { ...body, name });
    }
    case "remove":
      if (arg === undefined) throw usage("remove needs a connector name");
      return call("DELETE", `/admin/connectors/${encodeURIComponent(arg)}`);
    default:
      io.stderr.write(CONNECTORS_USAGE);
      return 2;
  }
}

function usage(message: string): ConfigError {
  return new ConfigError([{ file: "", path: "", message: `${message}\n${CONNECTORS_USAGE}` }]);
}

export { formatProblem };
