import { isPlainObject } from "../../core/index.js";

const MASK = "[REDACTED]";
/** Short values would redact ordinary words; credentials are never this short in practice. */
const MIN_SECRET_LENGTH = 6;
/** Issued OAuth tokens are remembered for redaction; older ones have expired long ago. */
const MAX_ROTATING = 8;

/**
 * Knows every secret this connector holds (configured credentials, their encoded forms, issued
 * tokens) and masks them wherever they could surface: upstream error bodies that echo the
 * Authorization header, results of echo endpoints, error messages.
 */
export class SecretRedactor {
  private readonly fixed = new Set<string>();
  private readonly rotating: string[] = [];

  add(secret: string | undefined): void {
    for (const form of forms(secret)) this.fixed.add(form);
  }

  addRotating(secret: string): void {
    for (const form of forms(secret)) {
      if (this.rotating.includes(form)) continue;
      this.rotating.push(form);
      if (this.rotating.length > MAX_ROTATING * 2) this.rotating.shift();
    }
  }

  private all(): string[] {
    // Longest first, so a secret that contains another is masked whole.
    return [...this.fixed, ...this.rotating].sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.all()) if (out.includes(s)) out = out.split(s).join(MASK);
    return out;
  }

  /** Deep copy with every string (and key) redacted; returns the input itself when nothing matched. */
  redactValue<T>(value: T): T {
    const secrets = this.all();
    if (secrets.length === 0) return value;
    const hit = (s: string) => secrets.some((x) => s.includes(x));
    const walk = (v: unknown): unknown => {
      if (typeof v === "string") return hit(v) ? this.redact(v) : v;
      if (Array.isArray(v)) return v.map(walk);
      if (isPlainObject(v)) {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) out[hit(k) ? this.redact(k) : k] = walk(x);
        return out;
      }
      return v;
    };
    return walk(value) as T;
  }
}

function forms(secret: string | undefined): string[] {
  if (secret === undefined || secret.length < MIN_SECRET_LENGTH) return [];
  const out = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  return [...out];
}
