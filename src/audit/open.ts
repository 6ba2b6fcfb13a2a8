import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import type { Logger } from "pino";
import type { AuditConfig } from "../config/audit-schema.js";
import { GatewayError } from "../core/errors.js";
import { openCheckpoint } from "./checkpoint.js";
import { ExternalCheckpointPublisher, LATEST_FILE, readExternalDirectory } from "./external.js";
import { loadSigner, parseTrustedKeys } from "./keys.js";
import { AuditLog, describeStoreError } from "./log.js";
import { rangeHash } from "./merkle-tree.js";
import type { NoteVerifier } from "./note.js";
import { AuditReader, checkpointOf } from "./reader.js";
import { Redactor } from "./redact.js";
import { STORE_FORMAT, SqliteAuditStore } from "./store.js";
import type { SyncCalls } from "./wal-sync.js";

export interface OpenAuditLogOptions {
  readonly config: AuditConfig;
  /** The audit directory (paths.audit, resolved). */
  readonly dir: string;
  readonly logger: Logger;
  /** How the write-ahead log is fsynced; tests substitute a disk that fails. */
  readonly syncCalls?: SyncCalls;
}

function unavailable(file: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError("AUDIT_UNAVAILABLE", `audit log ${file}: cannot open: ${describeStoreError(err)}`, { cause: err });
}

function externalDirOf(config: AuditConfig, dir: string): string | undefined {
  const d = config.checkpoint.external.directory;
  return d === undefined ? undefined : resolve(dir, d);
}

/** Origin fixed at creation; a configured origin must match it afterwards. */
function settleOrigin(store: SqliteAuditStore, config: AuditConfig): string {
  // Under the write lock: two processes creating the same log at once agree on one origin.
  return store.writeTransaction(() => {
    const format = store.getMeta("format");
    if (format !== undefined && format !== STORE_FORMAT) {
      throw new GatewayError("CONFIG_INVALID", `audit store ${store.file} has format "${format}", expected "${STORE_FORMAT}"`);
    }
    const stored = store.getMeta("origin");
    if (stored !== undefined) {
      if (config.origin !== undefined && config.origin !== stored) {
        throw new GatewayError(
          "CONFIG_INVALID",
          `audit.origin "${config.origin}" differs from the origin "${stored}" this log was created with; a log's origin cannot change`,
        );
      }
      return stored;
    }
    const origin = config.origin ?? `portcullis/${hostname().replace(/\s+/g, "-")}`;
    store.putMeta("format", STORE_FORMAT);
    store.putMeta("origin", origin);
    store.putMeta("created", new Date().toISOString());
    return origin;
  });
}

/**
 * Refuses to start on a log that is shorter than, or disagrees with, its own latest checkpoint or
 * the latest external copy: that is a deleted or rewritten tail, and writing on would bury it.
 */
async function checkAgainstCheckpoints(
  store: SqliteAuditStore,
  origin: string,
  trusted: readonly NoteVerifier[],
  externalDir: string | undefined,
): Promise<void> {
  // External copies first, then the store in one read snapshot: another process appending and
  // checkpointing meanwhile can only make the store longer than what was read outside it.
  const candidates: { source: string; note: string }[] = [];
  if (externalDir !== undefined) {
    const ext = (await readExternalDirectory(externalDir)).filter((e) => e.source.endsWith(LATEST_FILE));
    candidates.push(...ext);
  }
  store.db.transaction(() => checkSnapshot(store, origin, trusted, candidates))();
}

function checkSnapshot(
  store: SqliteAuditStore,
  origin: string,
  trusted: readonly NoteVerifier[],
  candidates: { source: string; note: string }[],
): void {
  const size = store.size();
  const latest = store.latestCheckpoint();
  if (latest) candidates.unshift({ source: "its checkpoints table", note: latest.note });
  const reader = store.nodeReader();
  for (const c of candidates) {
    let cp;
    try {
      cp = openCheckpoint(c.note, trusted, origin);
    } catch (err) {
      throw new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit log ${store.file}: the latest checkpoint in ${c.source} does not verify (${(err as Error).message}); run \`portcullis audit verify\``,
      );
    }
    if (cp.size > size) {
      throw new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit log ${store.file} has ${size} records but ${c.source} holds a checkpoint for ${cp.size}: its tail was deleted; run \`portcullis audit verify\``,
      );
    }
    if (!rangeHash(reader, 0, cp.size).equals(cp.root)) {
      throw new GatewayError(
        "AUDIT_UNAVAILABLE",
        `audit log ${store.file} does not match the checkpoint for ${cp.size} records in ${c.source}; run \`portcullis audit verify\``,
      );
    }
  }
}

/** Opens (creating if needed) the audit log a gateway writes to. Throws AUDIT_UNAVAILABLE or CONFIG_INVALID. */
export async function openAuditLog(opts: OpenAuditLogOptions): Promise<AuditLog> {
  const { config, dir, logger } = opts;
  if (!config.enabled) throw new GatewayError("CONFIG_INVALID", "the audit log is disabled (audit.enabled is false)");
  const file = resolve(dir, config.file);
  let store: SqliteAuditStore | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    store = new SqliteAuditStore(file, {
      busyTimeoutMs: config.busyTimeoutMs,
      ...(config.maxSizeBytes !== undefined ? { maxSizeBytes: config.maxSizeBytes } : {}),
    });
    const origin = settleOrigin(store, config);
    const missing = store.ensureTriggers();
    if (missing.length > 0 && store.size() > 0) {
      logger.error({ file, missing }, "audit: append-only triggers were missing on an existing log (tampering?); recreated them");
    }
    const signer = loadSigner(config, dir, origin, logger);
    const trusted = [signer, ...parseTrustedKeys(config.signing.trustedKeys)];
    const externalDir = externalDirOf(config, dir);
    await checkAgainstCheckpoints(store, origin, trusted, externalDir);
    const redactor = new Redactor(config.redaction.rules, config.redaction.key);
    const publisher = new ExternalCheckpointPublisher(
      {
        directory: externalDir,
        url: config.checkpoint.external.url,
        headers: config.checkpoint.external.headers,
        timeoutMs: config.checkpoint.external.timeoutMs,
      },
      logger,
    );
    const log = new AuditLog(store, origin, trusted, externalDir, signer, redactor, publisher, {
      maxBatch: config.maxBatch,
      maxRecordBytes: config.maxRecordBytes,
      everyRecords: config.checkpoint.everyRecords,
      everyMs: config.checkpoint.everyMs,
      heartbeatMs: config.checkpoint.heartbeatMs,
      ...(opts.syncCalls ? { syncCalls: opts.syncCalls } : {}),
    }, logger);
    // A start is a checkpoint: it attests whatever a crash left unsigned, and shows the restart.
    await log.checkpoint();
    logger.info({ file, origin, size: log.size(), keyId: signer.id }, "audit: log open");
    return log;
  } catch (err) {
    store?.close();
    throw unavailable(file, err);
  }
}

export interface OpenAuditReaderOptions {
  readonly config: AuditConfig;
  readonly dir: string;
  /** Extra verifier keys (e.g. from --key), trusted besides the configured ones. */
  readonly keys?: readonly NoteVerifier[];
}

/**
 * Read-only access for the CLI and auditors; never writes (so never signs). The configured
 * signing key, when available, contributes its public half to the trusted keys.
 */
export function openAuditReader(opts: OpenAuditReaderOptions): AuditReader {
  const { config, dir } = opts;
  const file = resolve(dir, config.file);
  let store: SqliteAuditStore | undefined;
  try {
    store = new SqliteAuditStore(file, { readonly: true, busyTimeoutMs: config.busyTimeoutMs });
    const origin = store.getMeta("origin");
    if (origin === undefined) throw new GatewayError("AUDIT_UNAVAILABLE", `audit store ${file} has no origin: not an audit log`);
    const trusted: NoteVerifier[] = [...parseTrustedKeys(config.signing.trustedKeys), ...(opts.keys ?? [])];
    try {
      trusted.push(loadSigner({ ...config, signing: { ...config.signing, autoGenerate: false } }, dir, origin));
    } catch {
      // An auditor's machine has no private key; the keys given explicitly are the trust anchor.
    }
    return new AuditReader(store, origin, trusted, externalDirOf(config, dir));
  } catch (err) {
    store?.close();
    throw unavailable(file, err);
  }
}

export { checkpointOf };
