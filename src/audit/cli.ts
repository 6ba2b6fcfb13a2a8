import { once } from "node:events";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { AuditConfig } from "../config/audit-schema.js";
import { isGatewayError } from "../core/errors.js";
import { toBase64 } from "./hash.js";
import { readVerifierArg, writeNewKey } from "./keys.js";
import type { NoteVerifier } from "./note.js";
import { openAuditReader } from "./open.js";
import { verifyInclusionBundle } from "./proof-bundle.js";
import type { AuditQuery, AuditReader, AuditRecordView } from "./reader.js";
import type { VerifyReport } from "./verify.js";

/** What `portcullis audit …` needs from the CLI host. */
export interface CliEnv {
  configPath?: string;
  /** The audit directory (paths.audit, resolved); `--audit-dir` overrides it. */
  auditDir: string;
  auditConfig: AuditConfig;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const EXIT_OK = 0;
/** Verification found a problem, or a proof does not verify. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** The store could not be read (missing, locked, not an audit log). */
export const EXIT_UNAVAILABLE = 3;

const USAGE = `usage: portcullis audit <command> [options]

commands:
  verify [--trusted-checkpoint FILE]... [--key KEY|FILE]... [--json] [--progress|--no-progress]
      Recompute every hash, the chain, the Merkle tree and every checkpoint. Exit 1 on any failure.
  query [--from ISO] [--to ISO] [--subject S] [--tool T] [--connector C] [--outcome ok|error|denied]
        [--call-id ID] [--type T] [--limit N] [--cursor C] [--order asc|desc] [--format table|json|jsonl]
  export [--from-seq N] [--to-seq N] [--out FILE]
      Records (exact canonical bytes) and checkpoints as JSONL.
  prove <seq> [--out FILE]
      Inclusion proof of record <seq> against the latest checkpoint covering it.
  verify-proof FILE --key KEY|FILE [--origin ORIGIN]
      Check a proof offline, with nothing but the log's public (verifier) key.
  keygen [--name NAME] [--out DIR]
      New Ed25519 checkpoint key: NAME-<id>.key (private, 0600) and .pub (verifier key).

common options: --audit-dir DIR (default: paths.audit of the config)
`;

class UsageError extends Error {}

function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return stream.write(text) ? Promise.resolve() : once(stream, "drain").then(() => undefined);
}

function parse(
  argv: string[],
  options: ParseArgsConfig["options"],
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args: argv,
      options: { "audit-dir": { type: "string" }, ...options },
      allowPositionals: true,
      strict: true,
    });
    return { values: parsed.values as Record<string, unknown>, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
}

function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^\d{1,15}$/.test(v)) throw new UsageError(`${name} must be a non-negative integer`);
  return Number(v);
}

function keysFrom(values: unknown): NoteVerifier[] {
  return strs(values).map((k) => {
    try {
      return readVerifierArg(k);
    } catch (err) {
      throw new UsageError(`--key ${k.slice(0, 40)}: ${(err as Error).message}`);
    }
  });
}

async function withReader<T>(env: CliEnv, dir: string, keys: NoteVerifier[], fn: (r: AuditReader) => Promise<T>): Promise<T> {
  const reader = openAuditReader({ config: env.auditConfig, dir, keys });
  try {
    return await fn(reader);
  } finally {
    await reader.close();
  }
}

export async function runAuditCommand(argv: string[], env: CliEnv): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "verify":
        return await verifyCommand(rest, env);
      case "query":
        return await queryCommand(rest, env);
      case "export":
        return await exportCommand(rest, env);
      case "prove":
        return await proveCommand(rest, env);
      case "verify-proof":
        return await verifyProofCommand(rest, env);
      case "keygen":
        return await keygenCommand(rest, env);
      case undefined:
      case "help":
      case "--help":
        await write(env.stdout, USAGE);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      default:
        throw new UsageError(`unknown audit command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      await write(env.stderr, `portcullis audit: ${err.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    const message = isGatewayError(err) ? err.message : (err as Error).message;
    await write(env.stderr, `portcullis audit ${command ?? ""}: ${message}\n`);
    return isGatewayError(err) && err.code === "INVALID_REQUEST" ? EXIT_USAGE : EXIT_UNAVAILABLE;
  }
}

function dirOf(values: Record<string, unknown>, env: CliEnv): string {
  return resolve(str(values["audit-dir"]) ?? env.auditDir);
}

function progressReporter(stream: NodeJS.WritableStream, enabled: boolean): ((done: number, total: number) => void) | undefined {
  if (!enabled) return undefined;
  const tty = (stream as { isTTY?: boolean }).isTTY === true;
  let lastDecile = -1;
  return (done, total) => {
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
    if (tty) {
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      stream.write(`\rverifying [${"#".repeat(filled)}${".".repeat(width - filled)}] ${pct}% ${done.toLocaleString("en")}/${total.toLocaleString("en")}${done >= total ? "\n" : ""}`);
    } else if (Math.floor(pct / 10) > lastDecile) {
      lastDecile = Math.floor(pct / 10);
      stream.write(`verifying: ${done}/${total} records (${pct}%)\n`);
    }
  };
}

function describeReport(report: VerifyReport, file: string): string {
  if (report.ok) {
    const lines = [
      `OK: ${file}: ${report.verified} records verified in ${Math.round(report.elapsedMs)} ms, root ${report.root ?? ""}`,
      `    ${report.checkpointsChecked} checkpoint(s) checked; attested up to ${report.attestedSize} record(s), ${report.unattested} not yet signed`,
    ];
    for (const w of report.warnings) lines.push(`    warning: ${w}`);
    return `${lines.join("\n")}\n`;
  }
  const f = report.failure!;
  const range = f.toSeq !== undefined && f.toSeq !== f.seq ? `..${f.toSeq}` : "";
  const lines = [`FAILED: ${file}: ${f.kind} at seq ${f.seq}${range}: ${f.message}`];
  for (const other of report.failures.slice(1, 6)) lines.push(`    also: ${other.kind} at seq ${other.seq}: ${other.message}`);
  if (report.failures.length > 6) lines.push(`    … ${report.failures.length - 6} more (use --json)`);
  for (const w of report.warnings) lines.push(`    warning: ${w}`);
  return `${lines.join("\n")}\n`;
}

async function verifyCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = parse(argv, {
    "trusted-checkpoint": { type: "string", multiple: true },
    key: { type: "string", multiple: true },
    json: { type: "boolean" },
    progress: { type: "boolean" },
    "no-progress": { type: "boolean" },
  });
  const dir = dirOf(values, env);
  const keys = keysFrom(values.key);
  const trustedCheckpoints = strs(values["trusted-checkpoint"]).map((file) => {
    if (!existsSync(file)) throw new UsageError(`--trusted-checkpoint ${file}: no such file`);
    return { source: file, note: readFileSync(file, "utf8") };
  });
  return withReader(env, dir, keys, async (reader) => {
    if (keys.length === 0 && env.auditConfig.signing.trustedKeys.length === 0) {
      await write(
        env.stderr,
        "note: trusting only the configured signing key; pass --key <published verifier key> for an independent check\n",
      );
    }
    const total = reader.size();
    const show = values["no-progress"] ? false : values.progress === true || total >= 100_000;
    const report = await reader.verify({ trustedCheckpoints, extraKeys: keys, ...withProgress(progressReporter(env.stderr, show)) });
    await write(env.stdout, values.json ? `${JSON.stringify(report, null, 2)}\n` : describeReport(report, reader.file));
    return report.ok ? EXIT_OK : EXIT_FAILED;
  });
}

function withProgress(fn: ((d: number, t: number) => void) | undefined): { onProgress?: (d: number, t: number) => void } {
  return fn ? { onProgress: fn } : {};
}

function pad(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n);
}

function tableRow(r: AuditRecordView): string {
  const e = r.record.event;
  const identity = (e.identity ?? {}) as { subject?: string };
  const outcome = (e.outcome ?? {}) as { status?: string; errorCode?: string };
  const decision = (e.decision ?? {}) as { allowed?: boolean; code?: string };
  const result = outcome.status
    ? `${outcome.status}${outcome.errorCode ? ` ${outcome.errorCode}` : ""}`
    : decision.allowed === false
      ? `denied ${decision.code ?? ""}`
      : "";
  return [
    String(r.seq).padStart(8),
    pad(String(e.time ?? ""), 24),
    pad(String(e.type ?? ""), 18),
    pad(identity.subject ?? "", 16),
    pad(String(e.tool ?? ""), 32),
    pad(result, 24),
    String(e.callId ?? ""),
  ].join(" ");
}

async function queryCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = parse(argv, {
    from: { type: "string" },
    to: { type: "string" },
    subject: { type: "string" },
    tool: { type: "string" },
    connector: { type: "string" },
    outcome: { type: "string" },
    "call-id": { type: "string" },
    type: { type: "string" },
    limit: { type: "string" },
    cursor: { type: "string" },
    order: { type: "string" },
    format: { type: "string" },
  });
  const format = str(values.format) ?? "table";
  if (!["table", "json", "jsonl"].includes(format)) throw new UsageError("--format must be table, json or jsonl");
  const order = str(values.order);
  if (order !== undefined && order !== "asc" && order !== "desc") throw new UsageError("--order must be asc or desc");
  const q: Record<string, unknown> = {
    from: str(values.from),
    to: str(values.to),
    subject: str(values.subject),
    tool: str(values.tool),
    connector: str(values.connector),
    outcome: str(values.outcome),
    callId: str(values["call-id"]),
    type: str(values.type),
    limit: int(values.limit, "--limit"),
    cursor: str(values.cursor),
    order,
  };
  for (const k of Object.keys(q)) if (q[k] === undefined) delete q[k];
  return withReader(env, dirOf(values, env), [], async (reader) => {
    const page = reader.query(q as AuditQuery);
    if (format === "json") {
      await write(env.stdout, `${JSON.stringify(page, null, 2)}\n`);
    } else if (format === "jsonl") {
      for (const r of page.records) await write(env.stdout, `${JSON.stringify(r)}\n`);
      if (page.nextCursor) await write(env.stderr, `more: --cursor ${page.nextCursor}\n`);
    } else {
      await write(env.stdout, `${["     seq", pad("time", 24), pad("type", 18), pad("subject", 16), pad("tool", 32), pad("result", 24), "call id"].join(" ")}\n`);
      for (const r of page.records) await write(env.stdout, `${tableRow(r)}\n`);
      await write(env.stderr, page.nextCursor ? `more: --cursor ${page.nextCursor}\n` : `${page.records.length} record(s)\n`);
    }
    return EXIT_OK;
  });
}

async function exportCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = parse(argv, { "from-seq": { type: "string" }, "to-seq": { type: "string" }, out: { type: "string" } });
  const from = int(values["from-seq"], "--from-seq") ?? 0;
  const to = int(values["to-seq"], "--to-seq");
  return withReader(env, dirOf(values, env), [], async (reader) => {
    const outFile = str(values.out);
    const out = outFile ? createWriteStream(outFile, { mode: 0o600 }) : env.stdout;
    try {
      await write(out, `${JSON.stringify({ type: "header", format: "portcullis-audit-export/v1", origin: reader.origin, size: reader.size(), verifierKeys: reader.trustedKeys() })}\n`);
      let buffer = "";
      for (const row of reader.rawRecords(from, to === undefined ? undefined : to + 1)) {
        buffer += `${JSON.stringify({ type: "record", seq: row.seq, hash: row.hash.toString("hex"), record: row.body.toString("utf8") })}\n`;
        if (buffer.length > 1 << 20) {
          await write(out, buffer);
          buffer = "";
        }
      }
      for (const cp of reader.checkpoints()) {
        buffer += `${JSON.stringify({ type: "checkpoint", size: cp.size, time: cp.time, root: toBase64(cp.root), note: cp.note })}\n`;
      }
      await write(out, buffer);
    } finally {
      if (outFile) {
        const ws = out as NodeJS.WritableStream & { end(cb: () => void): void };
        await new Promise<void>((r) => ws.end(r));
      }
    }
    return EXIT_OK;
  });
}

async function proveCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values, positionals } = parse(argv, { out: { type: "string" } });
  const seq = int(positionals[0], "<seq>");
  if (seq === undefined) throw new UsageError("prove needs a record sequence number");
  return withReader(env, dirOf(values, env), [], async (reader) => {
    const text = `${JSON.stringify(reader.prove(seq), null, 2)}\n`;
    const outFile = str(values.out);
    if (outFile) {
      const ws = createWriteStream(outFile);
      await write(ws, text);
      await new Promise<void>((r) => ws.end(r));
    } else {
      await write(env.stdout, text);
    }
    return EXIT_OK;
  });
}

async function verifyProofCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values, positionals } = parse(argv, { key: { type: "string", multiple: true }, origin: { type: "string" } });
  const file = positionals[0];
  if (file === undefined) throw new UsageError("verify-proof needs a proof file");
  const keys = keysFrom(values.key);
  if (keys.length === 0) throw new UsageError("verify-proof needs --key with the log's verifier key");
  let bundle: unknown;
  try {
    bundle = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
  try {
    const ok = verifyInclusionBundle(bundle, keys, str(values.origin));
    const e = ok.record.event;
    await write(
      env.stdout,
      `OK: record ${ok.seq} (${String(e.type)} ${String(e.time)}${e.callId ? ` call ${String(e.callId)}` : ""}) is in ${ok.origin} at tree size ${ok.treeSize}, checkpoint of ${ok.checkpointTime} signed by ${ok.signedBy.join(", ")}\n`,
    );
    return EXIT_OK;
  } catch (err) {
    await write(env.stdout, `FAILED: ${file}: ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
}

async function keygenCommand(argv: string[], env: CliEnv): Promise<number> {
  const { values } = parse(argv, { name: { type: "string" }, out: { type: "string" } });
  const name = str(values.name) ?? env.auditConfig.origin ?? "portcullis-audit";
  const out = resolve(str(values.out) ?? resolve(dirOf(values, env), "keys"));
  let files;
  try {
    files = writeNewKey(out, name);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  await write(env.stdout, `${files.verifier}\n`);
  await write(
    env.stderr,
    [
      `wrote ${files.privateFile} (private, mode 0600) and ${files.publicFile} (verifier key, shown above)`,
      `to sign with it: set audit.signing.keyFile to that .key file, or audit.signing.privateKey to a \${ENV} reference holding its content;`,
      `when rotating, add the previous verifier key to audit.signing.trustedKeys so older checkpoints still verify;`,
      `give auditors the verifier key: \`portcullis audit verify-proof FILE --key '${files.verifier}'\``,
      "",
    ].join("\n"),
  );
  return EXIT_OK;
}
