import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { sha256 } from "./hash.js";

/**
 * Signed notes (C2SP signed-note, as in golang.org/x/mod/sumdb/note) with Ed25519 keys.
 * Key strings are the Go tool's: verifier `<name>+<id>+<base64(0x01‖pub)>`, signer
 * `PRIVATE+KEY+<name>+<id>+<base64(0x01‖seed)>`, where id = first 4 bytes of
 * SHA-256(name ‖ "\n" ‖ 0x01 ‖ pub), so any C2SP tooling can check our checkpoints.
 */

const ALG_ED25519 = 0x01;
const SIG_PREFIX = "\u2014 ";
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

export class NoteError extends Error {
  override readonly name = "NoteError";
}

export interface NoteVerifier {
  readonly name: string;
  /** Key id as 8 lowercase hex digits. */
  readonly id: string;
  readonly publicKey: KeyObject;
  /** The verifier key string, e.g. `audit.example+1a2b3c4d+AbC…`. */
  readonly text: string;
}

export interface NoteSigner extends NoteVerifier {
  readonly privateKey: KeyObject;
  /** The verifier key string of this signer (safe to publish). */
  readonly verifierText: string;
}

export function isValidKeyName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && !/[\s+\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u.test(name);
}

function keyId(name: string, keyData: Buffer): string {
  return sha256(Buffer.concat([Buffer.from(`${name}\n`, "utf8"), keyData])).subarray(0, 4).toString("hex");
}

function rawPublic(key: KeyObject): Buffer {
  const der = key.export({ format: "der", type: "spki" });
  return der.subarray(der.length - 32);
}

function rawSeed(key: KeyObject): Buffer {
  const der = key.export({ format: "der", type: "pkcs8" });
  return der.subarray(der.length - 32);
}

/** A new Ed25519 key pair as signer and verifier key strings. */
export function generateNoteKey(name: string): { signer: string; verifier: string; id: string } {
  if (!isValidKeyName(name)) throw new NoteError(`invalid key name "${name}": no spaces or '+'`);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.concat([Buffer.from([ALG_ED25519]), rawPublic(publicKey)]);
  const seed = Buffer.concat([Buffer.from([ALG_ED25519]), rawSeed(privateKey)]);
  const id = keyId(name, pub);
  return {
    signer: `PRIVATE+KEY+${name}+${id}+${seed.toString("base64")}`,
    verifier: `${name}+${id}+${pub.toString("base64")}`,
    id,
  };
}

function decodeKeyData(text: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new NoteError(`${what}: key data is not base64`);
  const data = Buffer.from(text, "base64");
  if (data.length !== 33 || data[0] !== ALG_ED25519) throw new NoteError(`${what}: not an Ed25519 key`);
  return data;
}

export function parseVerifierKey(text: string): NoteVerifier {
  const trimmed = text.trim();
  const parts = trimmed.split("+");
  // The base64 key data may itself contain '+', so rejoin everything after the id.
  const [name, id, ...rest] = parts;
  if (name === undefined || id === undefined || rest.length === 0 || !isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(id)) {
    throw new NoteError("malformed verifier key: want <name>+<8 hex id>+<base64 key>");
  }
  const data = decodeKeyData(rest.join("+"), `verifier key ${name}`);
  if (keyId(name, data) !== id) throw new NoteError(`verifier key ${name}: id ${id} does not match the key`);
  const publicKey = createPublicKey({ key: Buffer.concat([SPKI_ED25519, data.subarray(1)]), format: "der", type: "spki" });
  return { name, id, publicKey, text: trimmed };
}

export function parseSignerKey(text: string): NoteSigner {
  const trimmed = text.trim();
  if (!trimmed.startsWith("PRIVATE+KEY+")) throw new NoteError("malformed signer key: want PRIVATE+KEY+<name>+<id>+<key>");
  const [name, id, ...rest] = trimmed.slice("PRIVATE+KEY+".length).split("+");
  if (name === undefined || id === undefined || rest.length === 0 || !isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(id)) {
    throw new NoteError("malformed signer key: want PRIVATE+KEY+<name>+<8 hex id>+<base64 key>");
  }
  const seed = decodeKeyData(rest.join("+"), `signer key ${name}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed.subarray(1)]), format: "der", type: "pkcs8" });
  const publicKey = createPublicKey(privateKey);
  const pub = Buffer.concat([Buffer.from([ALG_ED25519]), rawPublic(publicKey)]);
  if (keyId(name, pub) !== id) throw new NoteError(`signer key ${name}: id ${id} does not match the key`);
  const verifierText = `${name}+${id}+${pub.toString("base64")}`;
  return { name, id, publicKey, privateKey, text: verifierText, verifierText };
}

function checkText(text: string): void {
  if (!text.endsWith("\n")) throw new NoteError("note text must end with a newline");
  if (text.includes("\n\n")) throw new NoteError("note text must not contain a blank line");
  if (text.includes("\r")) throw new NoteError("note text must not contain carriage returns");
}

/** Signs `text` (which ends in a newline) and returns the complete signed note. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkText(text);
  let out = `${text}\n`;
  for (const s of signers) {
    const sig = sign(null, Buffer.from(text, "utf8"), s.privateKey);
    const blob = Buffer.concat([Buffer.from(s.id, "hex"), sig]);
    out += `${SIG_PREFIX}${s.name} ${blob.toString("base64")}\n`;
  }
  return out;
}

export interface OpenedNote {
  readonly text: string;
  /** Keys (name+id) whose signatures verified. */
  readonly verifiedBy: readonly string[];
}

/**
 * Splits a note and checks its signatures. Succeeds only when at least one signature verifies
 * with a trusted key; a signature that names a trusted key but does not verify is an error
 * (it is a forgery, not an unknown cosigner).
 */
export function openNote(note: string, trusted: readonly NoteVerifier[]): OpenedNote {
  if (note.length > 1_000_000) throw new NoteError("note is too large");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("note has no signature block");
  const text = note.slice(0, split + 1);
  checkText(text);
  const sigBlock = note.slice(split + 2);
  if (!sigBlock.endsWith("\n")) throw new NoteError("note signature block must end with a newline");
  const verifiedBy: string[] = [];
  const lines = sigBlock.slice(0, -1).split("\n");
  if (lines.length === 0 || lines.length > 100) throw new NoteError("note has no or too many signatures");
  for (const line of lines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line);
    if (!m) throw new NoteError("malformed signature line");
    const [, name, b64] = m as unknown as [string, string, string];
    const blob = Buffer.from(b64, "base64");
    if (blob.length < 5) throw new NoteError("malformed signature line");
    const id = blob.subarray(0, 4).toString("hex");
    const key = trusted.find((k) => k.name === name && k.id === id);
    if (!key) continue;
    const ok = blob.length === 68 && verify(null, Buffer.from(text, "utf8"), key.publicKey, blob.subarray(4));
    if (!ok) throw new NoteError(`signature by ${name}+${id} does not verify`);
    verifiedBy.push(`${name}+${id}`);
  }
  if (verifiedBy.length === 0) throw new NoteError("note is not signed by any trusted key");
  return { text, verifiedBy };
}
