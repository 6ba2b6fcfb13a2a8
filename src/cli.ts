#!/usr/bin/env node
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadGatewayConfig, DEFAULT_CONFIG_FILE, type LoadedGatewayConfig } from "./config/load.js";
import { createLogger, safeJson, type Identity, type Logger } from "./core/index.js";
import type { DemoBackend } from "./demo/index.js";
import type { RunningHttpServer } from "./server/http.js";
import { startHttp } from "./server/serve-http.js";
import { capYoungGeneration, tuneHeapGrowth, youngGenerationCap } from "./server/heap.js";
import { describeStartupError, startRuntime, type Runtime } from "./server/runtime.js";
import { serveStdio, stdioIdentity } from "./server/stdio.js";
import { startTracing } from "./server/tracing.js";
import { runAuditCommand } from "./audit/cli.js";
import { openAuditLog } from "./audit/open.js";
import { auditSchema, type AuditConfig } from "./config/audit-schema.js";
import { runApprovalsCommand } from "./scopes/cli.js";
import { runConnectorsCommand } from "./server/connectors-cli.js";
import { SERVER_VERSION } from "./server/mcp-server.js";

export interface CliEnv {
  configPath: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `portcullis ${SERVER_VERSION} — MCP tool gateway

Usage: portcullis <command> [options]

Commands:
  serve [--http | --stdio]     serve MCP (default: HTTP when enabled in the config, else stdio)
  validate [--probe]           load and check every file; --probe also checks each upstream is reachable
  tools [--json] [--token JWT] the tools an identity sees (default: the configured local identity)
  audit <verify|query|export|prove|verify-proof|keygen>   compliance: see "portcullis audit --help"
  approvals <list|show|approve|deny>                       human approval of parked calls
  connectors <list|add|remove> [--url URL]                 register connectors (offline or via the admin API)

Common options:
  --config <path>              gateway config file (default: ${DEFAULT_CONFIG_FILE})
  -h, --help                   show this help
  -v, --version                show the version

Docs: README.md, docs/configuration.md, docs/cli.md
`;

type Command = (argv: string[], env: CliEnv) => Promise<number>;

const commands: Record<string, Command> = {
  serve: serveCommand,
  validate: validateCommand,
  tools: toolsCommand,
  audit: auditCommand,
  approvals: (argv, env) =>
    runApprovalsCommand(argv, {
      ...env,
      openAudit: async (loaded) =>
        loaded.config.audit.enabled
          ? openAuditLog({ config: loaded.config.audit, dir: loaded.auditDir, logger: createLogger("warn") })
          : undefined,
    }),
  connectors: (argv, env) => runConnectorsCommand(argv, env),
};

export async function main(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    io.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === "-v" || name === "--version") {
    io.stdout.write(`${SERVER_VERSION}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    io.stderr.write(`portcullis: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  const configIndex = rest.indexOf("--config");
  const configPath = configIndex >= 0 ? rest[configIndex + 1] : undefined;
  if (configIndex >= 0 && (configPath === undefined || configPath.startsWith("-"))) {
    io.stderr.write("portcullis: --config needs a path\n");
    return 2;
  }
  const args = configIndex >= 0 ? [...rest.slice(0, configIndex), ...rest.slice(configIndex + 2)] : rest;
  try {
    return await command(args, { configPath: configPath ?? DEFAULT_CONFIG_FILE, ...io });
  } catch (err) {
    io.stderr.write(`${describeStartupError(err)}\n`);
    return 1;
  }
}

/** Parses a command's own flags; unknown flags are errors that name the flag. */
export function flags<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T) {
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
}

async function prepare(
  env: CliEnv,
  quiet = true,
): Promise<{ loaded: LoadedGatewayConfig; logger: Logger; demo: DemoBackend | undefined }> {
  const loaded = loadGatewayConfig(env.configPath);
  const level = loaded.config.logging.level;
  // One-shot commands print their answer on stdout; routine startup chatter would drown it.
  const logger = createLogger(quiet && (level === "info" || level === "debug") ? "warn" : level);
  // Imported only when on: the demo backends pull in the SOAP and AMQP stacks.
  const demo = loaded.config.demo.enabled
    ? await (await import("./demo/index.js")).startDemo({ repoRoot: REPO_ROOT, logger })
    : undefined;
  return { loaded, logger, demo };
}

async function serveCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = flags(argv, { http: { type: "boolean" }, stdio: { type: "boolean" } });
  // Before the registry loads: the cap can stop the young generation growing, not shrink it.
  const youngCapMb = youngGenerationCap();
  const uncapYoung = youngCapMb === undefined ? undefined : capYoungGeneration(youngCapMb);
  let prepared: Awaited<ReturnType<typeof prepare>>;
  try {
    prepared = await prepare(env, false);
  } catch (err) {
    uncapYoung?.();
    throw err;
  }
  const { loaded, logger, demo } = prepared;
  const { config } = loaded;
  const mode = values.stdio
    ? "stdio"
    : values.http
      ? "http"
      : config.transports.http.enabled
        ? "http"
        : "stdio";

  const tracing = await startTracing(logger);
  let runtime: Runtime;
  try {
    runtime = await startRuntime(loaded, logger);
  } catch (err) {
    await tracing?.shutdown();
    await demo?.close();
    uncapYoung?.();
    throw err;
  }
  // After start-up: loading a large registry is one burst that V8's own growth handles better.
  const heapFlag = tuneHeapGrowth();
  logger.info(
    {
      heapGrowth: heapFlag ?? "as given by the operator",
      youngGenerationMb: youngCapMb ?? "as given by the operator",
    },
    "V8 heap tuned",
  );

  let http: RunningHttpServer | undefined;
  let stdio: Awaited<ReturnType<typeof serveStdio>> | undefined;
  try {
    if (mode === "stdio") {
      const identity = await stdioIdentity(runtime);
      stdio = await serveStdio(runtime, identity, logger);
    } else {
      http = await startHttp(runtime, logger);
      env.stderr.write(`portcullis: MCP over Streamable HTTP at ${http.url.href}\n`);
    }
    runtime.watch();
    // Start-up lines now rather than with the next batch (see createLogger): whoever watches them
    // learns at once that the gateway is serving.
    logger.flush();
  } catch (err) {
    await runtime.close();
    await demo?.close();
    uncapYoung?.();
    throw err;
  }

  const stop = async (why: string): Promise<void> => {
    logger.info({ why, inFlight: runtime.gateway.inFlight }, "shutting down: draining calls in flight");
    const drained = await runtime.gateway.drain(config.limits.shutdownGraceMs);
    if (!drained)
      logger.warn({ inFlight: runtime.gateway.inFlight }, "grace period over: abandoning calls in flight");
    await http?.close();
    logger.debug("http closed");
    await stdio?.close();
    await runtime.close();
    logger.debug("runtime closed");
    await demo?.close();
    await tracing?.shutdown();
    uncapYoung?.();
    logger.flush();
  };

  return await new Promise<number>((resolveExit) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      void stop(signal).then(() => resolveExit(0));
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    void stdio?.closed.then(() => {
      if (stopping) return;
      stopping = true;
      void stop("stdin closed").then(() => resolveExit(0));
    });
  });
}

async function auditCommand(argv: string[], env: CliEnv): Promise<number> {
  let auditDir: string;
  let auditConfig: AuditConfig;
  try {
    const loaded = loadGatewayConfig(env.configPath);
    auditDir = loaded.auditDir;
    auditConfig = loaded.config.audit;
  } catch (err) {
    // Offline verification of a copied log needs no gateway config, only --audit-dir.
    if (!argv.includes("--audit-dir") && !argv.includes("verify-proof") && !argv.includes("keygen"))
      throw err;
    auditDir = resolve("audit");
    auditConfig = auditSchema.parse({});
  }
  return runAuditCommand(argv, {
    configPath: env.configPath,
    auditDir,
    auditConfig,
    stdout: env.stdout,
    stderr: env.stderr,
  });
}

async function validateCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = flags(argv, { probe: { type: "boolean" }, json: { type: "boolean" } });
  const { loaded, logger, demo } = await prepare(env);
  const out = env.stdout;
  let runtime: Runtime | undefined;
  try {
    runtime = await startRuntime(loaded, logger);
    const failures = runtime.statuses.filter((s) => s.state === "failed");
    const probes = values.probe
      ? await Promise.all(
          runtime.connectors.map(
            async (c) =>
              [c.name, await c.health().catch((e: Error) => ({ ok: false, detail: e.message }))] as const,
          ),
        )
      : [];
    const unhealthy = probes.filter(([, h]) => !h.ok);
    if (values.json) {
      out.write(
        `${safeJson({ config: loaded.file, connectors: runtime.statuses, tools: runtime.gateway.registry.size, probes: Object.fromEntries(probes) }, 2)}\n`,
      );
    } else {
      out.write(`config: ${loaded.file}\n`);
      for (const s of runtime.statuses) {
        const probe = probes.find(([n]) => n === s.name)?.[1];
        const health = probe
          ? probe.ok
            ? ", reachable"
            : `, UNREACHABLE: ${probe.detail ?? "health check failed"}`
          : "";
        out.write(
          s.state === "up"
            ? `  ok     ${s.name} (${s.kind}, ${s.file}): ${s.tools} tools${health}\n`
            : `  FAILED ${s.name} (${s.kind}, ${s.file}): ${s.error}\n`,
        );
      }
      out.write(`${runtime.gateway.registry.size} tools from ${runtime.connectors.length} connectors\n`);
    }
    return failures.length > 0 || unhealthy.length > 0 ? 1 : 0;
  } finally {
    await runtime?.close();
    await demo?.close();
  }
}

async function toolsCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = flags(argv, { json: { type: "boolean" }, token: { type: "string" } });
  const { loaded, logger, demo } = await prepare(env);
  let runtime: Runtime | undefined;
  try {
    runtime = await startRuntime(loaded, logger);
    let identity: Identity | undefined;
    if (values.token !== undefined) {
      if (!runtime.authenticator) throw new Error("--token needs identity.jwt in the config to verify it");
      identity = await runtime.authenticator.verify(values.token);
    } else {
      identity = runtime.localIdentity;
      if (!identity)
        throw new Error("no identity to list tools for: pass --token <jwt> or configure identity.local");
    }
    const tools = [];
    let cursor: string | undefined;
    do {
      const page = runtime.gateway.listTools(identity, cursor);
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    if (values.json) {
      env.stdout.write(
        `${safeJson({ identity: { subject: identity.subject, scopes: identity.scopes }, tools }, 2)}\n`,
      );
      return 0;
    }
    env.stdout.write(`identity: ${identity.subject} (scopes: ${identity.scopes.join(", ") || "none"})\n`);
    const rows = tools.map((t) => [
      t.name,
      [
        t.annotations?.readOnlyHint ? "read-only" : "writes",
        t.annotations?.destructiveHint ? "destructive" : "",
        t.annotations?.idempotentHint ? "idempotent" : "",
      ]
        .filter(Boolean)
        .join(","),
      (t.description ?? "").split("\n")[0]!.slice(0, 70),
    ]);
    const widths = [0, 1].map((i) => Math.max(i === 0 ? 4 : 5, ...rows.map((r) => r[i]!.length)));
    env.stdout.write(`${"TOOL".padEnd(widths[0]!)}  ${"HINTS".padEnd(widths[1]!)}  DESCRIPTION\n`);
    for (const r of rows)
      env.stdout.write(`${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]}\n`);
    env.stdout.write(`${tools.length} tools\n`);
    return 0;
  } finally {
    await runtime?.close();
    await demo?.close();
  }
}

/** Entry point of the `portcullis` bin and of `node dist/cli.js`. */
export function run(): void {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      // Pooled sockets and timers of connectors must not keep a finished command alive;
      // the short delay lets pino's asynchronous stderr writes drain.
      setTimeout(() => process.exit(code), 50).unref();
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${describeStartupError(err)}\n`);
      process.exit(1);
    },
  );
}

const invokedDirectly =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) run();
