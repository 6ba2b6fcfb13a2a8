import { parseArgs } from "node:util";
import { loadGatewayConfig } from "../config/load.js";
import { createLogger, GatewayError, safeJson, type AuditSink, type Identity } from "../core/index.js";
import type { ApprovalRecord, ApprovalStatus } from "./approvals.js";
import { createAuthenticator } from "./authenticator.js";
import { localIdentity } from "./identity.js";
import { openApprovalStore } from "./setup.js";

/** Same shape as src/cli.ts CliEnv. */
export interface ApprovalsCliEnv {
  configPath: string;
  /**
   * Opens the audit log so that a decision made here is recorded like one made over HTTP. Given by
   * the CLI host (scopes does not depend on src/audit); absent → decisions are not audited.
   */
  openAudit?: (loaded: ReturnType<typeof loadGatewayConfig>) => Promise<AuditSink | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

export const APPROVALS_USAGE = `Usage:
  portcullis approvals list [--status pending|approved|denied|expired|consumed|all] [--limit N] [--json]
  portcullis approvals show <id> [--json]
  portcullis approvals approve <id> [--note TEXT] [--token JWT]
  portcullis approvals deny <id> [--note TEXT] [--token JWT]

approve/deny act as the identity of --token (or $PORTCULLIS_TOKEN), verified with identity.jwt,
else as identity.local. That identity needs the approver scope (identity.roles.approver) and
must not be the one that requested the call.
`;

const STATUSES = ["pending", "approved", "denied", "expired", "consumed", "all"] as const;

function line(r: ApprovalRecord): string {
  const args = safeJson(r.arguments);
  return [
    r.id,
    r.status.padEnd(8),
    r.createdAt,
    r.requester.subject,
    r.tool,
    args.length > 80 ? `${args.slice(0, 77)}...` : args,
    `rule: ${r.rule}`,
  ].join("  ");
}

function detail(r: ApprovalRecord): string {
  const rows: [string, string][] = [
    ["id", r.id],
    ["status", r.status],
    ["tool", r.tool],
    ["arguments", safeJson(r.arguments, 2)],
    ["rule", r.rule],
    ["reason", r.reason ?? ""],
    ["requester", `${r.requester.subject}${r.requester.issuer ? ` (${r.requester.issuer})` : ""}`],
    ["scope", r.scope],
    ["requested", r.createdAt],
    ["expires", r.expiresAt],
    ["decided by", r.decidedBy ? `${r.decidedBy.subject} at ${r.decidedAt ?? "?"}` : ""],
    ["note", r.note ?? ""],
    ["used", r.consumedAt ? `${r.consumedAt} (call ${r.consumedCallId ?? "?"})` : ""],
  ];
  return rows
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `${k.padEnd(10)}  ${v}`)
    .join("\n");
}

/** `portcullis approvals list|show|approve|deny`. Returns the exit code. */
export async function runApprovalsCommand(argv: string[], io: ApprovalsCliEnv): Promise<number> {
  const env = io.env ?? process.env;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        status: { type: "string" },
        limit: { type: "string" },
        json: { type: "boolean" },
        note: { type: "string" },
        token: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n${APPROVALS_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [action, id, ...extra] = positionals;
  if (values.help) {
    io.stdout.write(APPROVALS_USAGE);
    return 0;
  }
  if (
    !action ||
    !["list", "show", "approve", "deny"].includes(action) ||
    extra.length > 0 ||
    (action !== "list" && !id)
  ) {
    io.stderr.write(APPROVALS_USAGE);
    return 2;
  }
  let loaded: ReturnType<typeof loadGatewayConfig>;
  let store: ReturnType<typeof openApprovalStore>;
  let audit: AuditSink | undefined;
  const logger = createLogger("warn");
  try {
    loaded = loadGatewayConfig(io.configPath, env);
    // A decision that cannot be recorded is not made: an unavailable audit log stops here.
    if ((action === "approve" || action === "deny") && io.openAudit) audit = await io.openAudit(loaded);
    store = openApprovalStore(loaded.config.identity, loaded.auditDir, logger, audit);
  } catch (err) {
    await audit?.close();
    if (err instanceof GatewayError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const { identity: identityCfg, transports } = loaded.config;
  try {
    if (action === "list") {
      const status = values.status ?? "pending";
      if (!(STATUSES as readonly string[]).includes(status)) {
        io.stderr.write(`--status must be one of ${STATUSES.join(", ")}\n`);
        return 2;
      }
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        io.stderr.write("--limit must be an integer from 1 to 1000\n");
        return 2;
      }
      const records = store.list({
        ...(status === "all" ? {} : { status: status as ApprovalStatus }),
        limit,
      });
      if (values.json) io.stdout.write(`${safeJson({ approvals: records }, 2)}\n`);
      else {
        for (const r of records) io.stdout.write(`${line(r)}\n`);
        io.stdout.write(
          `${records.length} ${status === "all" ? "" : `${status} `}approval${records.length === 1 ? "" : "s"}\n`,
        );
      }
      return 0;
    }
    if (action === "show") {
      const record = store.get(id!);
      if (!record) {
        io.stderr.write(`no approval with id ${id}\n`);
        return 1;
      }
      io.stdout.write(values.json ? `${safeJson(record, 2)}\n` : `${detail(record)}\n`);
      return 0;
    }
    const token = values.token ?? env.PORTCULLIS_TOKEN;
    let actor: Identity;
    if (token) {
      if (!identityCfg.jwt)
        throw new GatewayError(
          "CONFIG_INVALID",
          "a token was given but identity.jwt is not configured to verify it",
        );
      const http = transports.http;
      const audience = http.publicUrl ?? `http://${http.host}:${http.port}${http.path}`;
      actor = await createAuthenticator(identityCfg.jwt, { audience, logger }).verify(token);
    } else if (identityCfg.local) {
      actor = localIdentity(identityCfg.local);
    } else {
      io.stderr.write(
        "who is deciding? pass --token <jwt> (or set PORTCULLIS_TOKEN), or configure identity.local\n",
      );
      return 2;
    }
    const record = await store.decide(id!, action === "approve" ? "approve" : "deny", actor, values.note);
    io.stdout.write(
      `${record.id} ${record.status} by ${actor.subject}; ` +
        (record.status === "approved"
          ? `the requester may now repeat the call once, until ${record.expiresAt}\n`
          : `the call stays refused until ${record.expiresAt}\n`),
    );
    return 0;
  } catch (err) {
    if (err instanceof GatewayError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    store.close();
    await audit?.close();
  }
}
