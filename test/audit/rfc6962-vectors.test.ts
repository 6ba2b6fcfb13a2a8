import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import {
  verifyConsistency,
  verifyInclusion,
  verifySubtreeConsistency,
  verifySubtreeInclusion,
} from "../../src/audit/merkle-verify.js";
import { fixture } from "../helpers/fixtures.js";

const ROOT = fixture("rfc6962-vectors");

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith(".json")) out.push(p);
  }
  return out;
}

interface Vector {
  wantErr: boolean;
  desc: string;
  [key: string]: unknown;
}

// Plain base64 decoding on purpose: the vectors' corrupted hashes ("ZG9uJ3QgY2FyZSAx") must reach the verifier as-is.
const b64 = (s: unknown): Buffer => Buffer.from(String(s ?? ""), "base64");
const proofOf = (v: Vector): Buffer[] => ((v.proof as string[] | null) ?? []).map(b64);
const num = (v: unknown): number => v as number;

function outcome(run: () => void): boolean {
  try {
    run();
    return true;
  } catch {
    return false;
  }
}

const suites: Record<string, (v: Vector) => void> = {
  inclusion: (v) => verifyInclusion(num(v.leafIdx), num(v.treeSize), b64(v.leafHash), proofOf(v), b64(v.root)),
  consistency: (v) => verifyConsistency(num(v.size1), num(v.size2), proofOf(v), b64(v.root1), b64(v.root2)),
  subtreeinclusion: (v) =>
    verifySubtreeInclusion(num(v.leafIdx), num(v.start), num(v.end), b64(v.leafHash), proofOf(v), b64(v.root)),
  subtreeconsistency: (v) =>
    verifySubtreeConsistency(num(v.start), num(v.end), num(v.size), proofOf(v), b64(v.root1), b64(v.root2)),
};

describe("RFC 6962 / MTC proof verification against the transparency-dev vectors", () => {
  for (const [suite, verify] of Object.entries(suites)) {
    const vectors = files(join(ROOT, suite));
    it(`${suite}: every vector (${vectors.length}) gives the expected verdict`, () => {
      expect(vectors.length).toBeGreaterThan(0);
      const wrong: string[] = [];
      let errCases = 0;
      for (const file of vectors) {
        const v = JSON.parse(readFileSync(file, "utf8")) as Vector;
        if (v.wantErr) errCases++;
        const ok = outcome(() => verify(v));
        if (ok === v.wantErr) wrong.push(`${relative(ROOT, file)} (${v.desc}): wantErr=${v.wantErr}`);
      }
      expect(wrong).toEqual([]);
      expect(errCases).toBeGreaterThan(0);
    });
  }

  it("covers every vector file in the fixture", () => {
    const total = Object.keys(suites).reduce((n, s) => n + files(join(ROOT, s)).length, 0);
    expect(total).toBe(files(ROOT).length);
  });
});
