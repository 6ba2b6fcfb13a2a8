import { describe, expect, it } from "vitest";
import { checkpointText, openCheckpoint, parseCheckpointText, signCheckpoint } from "../../src/audit/checkpoint.js";
import { EMPTY_ROOT, sha256 } from "../../src/audit/hash.js";
import { generateNoteKey, openNote, parseSignerKey, parseVerifierKey, signNote } from "../../src/audit/note.js";

// golang.org/x/mod/sumdb/note's published example: byte-for-byte interop with Go tooling.
const GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE =
  `${GO_TEXT}\n` +
  "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

describe("signed notes and checkpoints", () => {
  it("signs exactly like Go's sumdb/note and verifies Go's note", () => {
    const signer = parseSignerKey(GO_SIGNER);
    expect(signer.id).toBe("c74f20a3");
    expect(signer.verifierText).toBe(GO_VERIFIER);
    expect(signNote(GO_TEXT, [signer])).toBe(GO_NOTE);
    expect(openNote(GO_NOTE, [parseVerifierKey(GO_VERIFIER)])).toEqual({ text: GO_TEXT, verifiedBy: ["PeterNeumann+c74f20a3"] });
  });

  it("refuses altered text, a signature by an unknown key only, and a forged signature claiming a trusted key", () => {
    const trusted = [parseVerifierKey(GO_VERIFIER)];
    expect(() => openNote(GO_NOTE.replace("cryptography", "cryptographY"), trusted)).toThrow(/does not verify/);
    const other = parseSignerKey(generateNoteKey("Somebody").signer);
    expect(() => openNote(signNote(GO_TEXT, [other]), trusted)).toThrow(/not signed by any trusted key/);
    // Same name, different key: the id differs, so it is not taken for the trusted key.
    const impostor = parseSignerKey(generateNoteKey("PeterNeumann").signer);
    expect(() => openNote(signNote(GO_TEXT, [impostor]), trusted)).toThrow(/not signed by any trusted key/);
    expect(() => openNote(GO_TEXT, trusted)).toThrow(/no signature block/);
  });

  it("rejects malformed and mismatched keys", () => {
    expect(() => parseVerifierKey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")).toThrow(/does not match/);
    expect(() => parseVerifierKey("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")).toThrow();
    expect(() => parseVerifierKey("PeterNeumann+c74f20a3+AA==")).toThrow(/Ed25519/);
    expect(() => parseSignerKey(GO_VERIFIER)).toThrow(/PRIVATE\+KEY/);
  });

  it("formats C2SP checkpoints and round-trips them through a signed note", () => {
    const key = generateNoteKey("audit.example/log");
    const signer = parseSignerKey(key.signer);
    const root = sha256("x");
    const cp = signCheckpoint({ origin: "audit.example/log", size: 42, root, time: "2025-01-01T00:00:00.000Z" }, [signer]);
    expect(checkpointText(cp)).toBe(`audit.example/log\n42\n${root.toString("base64")}\ntime 2025-01-01T00:00:00.000Z\n`);
    expect(cp.note.startsWith(checkpointText(cp))).toBe(true);
    const opened = openCheckpoint(cp.note, [parseVerifierKey(key.verifier)], "audit.example/log");
    expect(opened.size).toBe(42);
    expect(opened.root.equals(root)).toBe(true);
    expect(() => openCheckpoint(cp.note, [parseVerifierKey(key.verifier)], "other/log")).toThrow(/origin/);
    expect(parseCheckpointText(`o\n0\n${EMPTY_ROOT.toString("base64")}\n`).size).toBe(0);
    expect(() => parseCheckpointText(`o\n01\n${EMPTY_ROOT.toString("base64")}\n`)).toThrow(/decimal/);
    expect(() => parseCheckpointText("o\n1\nAAAA\n")).toThrow(/SHA-256/);
  });
});

describe("canonical JSON", () => {
  it("serialises exactly like the RFC 8785 reference package", async () => {
    const { canonicalJson } = await import("../../src/audit/record.js");
    const { default: canonicalize } = await import("canonicalize");
    const samples: unknown[] = [
      { b: 1, a: [true, false, null, "x"], "": 0, é: "é", "\u20ac": 1, "\ud83d\ude00": 2, A: { z: -0, y: 1e21, x: 1e-7 } },
      { numbers: [0, -1, 1.5, 333333333.3333333, 9007199254740991, 5e-324, 1.7976931348623157e308, 0.1 + 0.2] },
      { s: 'quote " backslash \\ control \u0001 \n \t line\u2028sep pair \ud83d\ude00' },
      [[], {}, [{}], { a: [] }],
      "plain",
      42,
    ];
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const gen = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return [rand() * 1e6 - 5e5, `s${Math.floor(rand() * 1e4)}\u00e9`, rand() < 0.5, null][Math.floor(rand() * 4)];
      if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => gen(depth + 1));
      const o: Record<string, unknown> = {};
      for (let i = 0; i < 4; i++) o[String.fromCharCode(0x41 + Math.floor(rand() * 0x300))] = gen(depth + 1);
      return o;
    };
    for (let i = 0; i < 300; i++) samples.push(gen(0));
    for (const v of samples) expect(canonicalJson(v)).toBe(canonicalize(v));
  });

  it("refuses lone surrogates, which RFC 8785 cannot represent", async () => {
    const { normalizeJson } = await import("../../src/audit/record.js");
    expect(() => normalizeJson({ a: "x\ud800y" }, "$", [])).toThrow(/lone surrogate at \$\.a/);
    expect(() => normalizeJson({ ["\udc00"]: 1 }, "$", [])).toThrow(/lone surrogate/);
    expect(normalizeJson({ a: "\ud83d\ude00" }, "$", [])).toEqual({ a: "\ud83d\ude00" });
  });
});
