import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "pino";
import type { AuditConfig } from "../config/audit-schema.js";
import { GatewayError } from "../core/errors.js";
import { generateNoteKey, parseSignerKey, parseVerifierKey, type NoteSigner, type NoteVerifier } from "./note.js";

/**
 * Where the checkpoint key comes from: `signing.privateKey` (a `${ENV}` reference), else
 * `signing.keyFile`, else (first start, autoGenerate) a new key written to keyFile with mode 0600.
 * Verification trusts the active key plus `signing.trustedKeys` (earlier keys after a rotation),
 * never whatever public keys happen to sit in the audit directory: that directory is what an
 * attacker would rewrite.
 */

export interface KeyFiles {
  readonly privateFile: string;
  readonly publicFile: string;
  readonly verifier: string;
  readonly id: string;
}

/** Writes a new key pair as `<dir>/<name>-<id>.key` (0600) and `.pub`. */
export function writeNewKey(dir: string, name: string): KeyFiles {
  const key = generateNoteKey(name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const base = resolve(dir, `${name.replace(/[^A-Za-z0-9._-]/g, "_")}-${key.id}`);
  writeFileSync(`${base}.key`, `${key.signer}\n`, { mode: 0o600, flag: "wx" });
  writeFileSync(`${base}.pub`, `${key.verifier}\n`, { mode: 0o644, flag: "wx" });
  return { privateFile: `${base}.key`, publicFile: `${base}.pub`, verifier: key.verifier, id: key.id };
}

/**
 * Creates `file` with `text` (mode 0600) only if it does not exist, atomically: the key is written
 * to a private temporary file and hard-linked into place, so a concurrent reader never sees a
 * half-written key. Returns false when the file already existed.
 */
function createKeyFile(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600, flag: "wx" });
  try {
    chmodSync(tmp, 0o600);
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

export function loadSigner(config: AuditConfig, auditDir: string, origin: string, logger?: Logger): NoteSigner {
  const { signing } = config;
  try {
    if (signing.privateKey !== undefined) return parseSignerKey(signing.privateKey);
    const file = resolve(auditDir, signing.keyFile);
    if (existsSync(file)) return parseSignerKey(readFileSync(file, "utf8"));
    if (!signing.autoGenerate) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `audit signing key ${file} does not exist; create one with \`portcullis audit keygen\` or set audit.signing.privateKey`,
      );
    }
    const key = generateNoteKey(signing.keyName ?? origin);
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    if (!createKeyFile(file, `${key.signer}\n`)) {
      // Another gateway process on this directory generated it first: both must sign with one key.
      return parseSignerKey(readFileSync(file, "utf8"));
    }
    writeFileSync(`${file}.pub`, `${key.verifier}\n`, { mode: 0o644 });
    logger?.warn(
      { keyFile: file, verifierKey: key.verifier },
      "audit: generated a checkpoint signing key; publish its verifier key to auditors and keep the private key out of the audit directory in production",
    );
    return parseSignerKey(key.signer);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("CONFIG_INVALID", `audit signing key: ${(err as Error).message}`, { cause: err });
  }
}

export function parseTrustedKeys(texts: readonly string[]): NoteVerifier[] {
  return texts.map((t, i) => {
    try {
      return parseVerifierKey(t);
    } catch (err) {
      throw new GatewayError("CONFIG_INVALID", `audit.signing.trustedKeys[${i}]: ${(err as Error).message}`, { cause: err });
    }
  });
}

/** A verifier key given on a command line: the key string itself, or a file holding it. */
export function readVerifierArg(arg: string): NoteVerifier {
  const text = existsSync(arg) ? readFileSync(arg, "utf8") : arg;
  return parseVerifierKey(text);
}
