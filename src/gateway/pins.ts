import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { GatewayError } from "../core/index.js";

export interface Pin {
  hash: string;
  /** Who accepted this definition ("first use" for trust on first use). */
  acceptedBy: string;
  acceptedAt: string;
}

/**
 * Accepted tool-definition hashes of pinned connectors, kept in one JSON file beside the audit
 * store. A pinned tool whose definition changes (its upstream spec or WSDL changed) is withheld
 * from every agent until an admin accepts the new hash.
 */
export class PinStore {
  private pins: Record<string, Pin>;

  constructor(private readonly file: string) {
    this.pins = PinStore.read(file);
  }

  private static read(file: string): Record<string, Pin> {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw new GatewayError("CONFIG_INVALID", `tool pins ${file}: cannot read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      const value = JSON.parse(text) as unknown;
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw new Error("not an object");
      return value as Record<string, Pin>;
    } catch (err) {
      throw new GatewayError(
        "CONFIG_INVALID",
        `tool pins ${file}: not valid JSON (${(err as Error).message}); restore it from backup or delete it to re-pin`,
        {
          cause: err,
        },
      );
    }
  }

  get(tool: string): Pin | undefined {
    return Object.hasOwn(this.pins, tool) ? this.pins[tool] : undefined;
  }

  all(): Readonly<Record<string, Pin>> {
    return this.pins;
  }

  accept(tool: string, hash: string, acceptedBy: string): Pin {
    const pin = { hash, acceptedBy, acceptedAt: new Date().toISOString() };
    this.pins = { ...this.pins, [tool]: pin };
    this.save();
    return pin;
  }

  /** Writes atomically (temp file + rename): a crash never leaves half a file. */
  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const sorted = Object.fromEntries(Object.entries(this.pins).sort(([a], [b]) => (a < b ? -1 : 1)));
    writeFileSync(tmp, `${JSON.stringify(sorted, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
