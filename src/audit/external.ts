import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { peekCheckpoint, type SignedCheckpoint } from "./checkpoint.js";
import { toBase64 } from "./hash.js";

/**
 * Copies of signed checkpoints kept outside the store. Whoever can rewrite audit.db can delete
 * its tail and its checkpoints table, but not (given separate permissions) this directory or the
 * remote endpoint; verify compares the log with them, which makes a deleted tail visible.
 *
 * Publishing is asynchronous and never blocks an append: a failure is logged and the next
 * checkpoint carries the (larger) latest state anyway.
 */

export const LATEST_FILE = "checkpoint";
export const HISTORY_FILE = "checkpoints.log";

export interface ExternalTargets {
  readonly directory?: string | undefined;
  readonly url?: string | undefined;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

export interface ExternalStatus {
  lastPublishedSize?: number;
  lastError?: string;
}

async function writeDurably(file: string, data: string, flags: "a" | "w"): Promise<void> {
  const fh = await open(file, flags, 0o644);
  try {
    await fh.writeFile(data, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function sizeOf(note: string): number {
  try {
    return peekCheckpoint(note).size;
  } catch {
    return -1;
  }
}

export class ExternalCheckpointPublisher {
  readonly status: ExternalStatus = {};
  private pending: SignedCheckpoint[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly targets: ExternalTargets,
    private readonly logger: Logger,
  ) {}

  get enabled(): boolean {
    return this.targets.directory !== undefined || this.targets.url !== undefined;
  }

  publish(cp: SignedCheckpoint): void {
    if (!this.enabled) return;
    this.pending.push(cp);
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves once everything queued so far is published (or has failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const latest = batch.reduce((a, b) => (b.size >= a.size ? b : a));
      try {
        if (this.targets.directory !== undefined) await this.writeDirectory(this.targets.directory, batch, latest);
        if (this.targets.url !== undefined) await this.post(this.targets.url, latest);
        this.status.lastPublishedSize = latest.size;
        this.status.lastError = undefined;
      } catch (err) {
        this.status.lastError = (err as Error).message;
        this.logger.error(
          { err: (err as Error).message, size: latest.size },
          "audit: cannot publish checkpoint outside the store; a deleted log tail would go unnoticed until this works",
        );
      }
    }
  }

  private async writeDirectory(dir: string, batch: readonly SignedCheckpoint[], latest: SignedCheckpoint): Promise<void> {
    await mkdir(dir, { recursive: true });
    const lines = batch
      .map((cp) => JSON.stringify({ size: cp.size, time: cp.time, root: toBase64(cp.root), note: cp.note }))
      .join("\n");
    await writeDurably(join(dir, HISTORY_FILE), `${lines}\n`, "a");
    // Another gateway process on the same log may have published a larger tree already; the
    // latest file must not go backwards (the history file keeps both).
    const current = await readFile(join(dir, LATEST_FILE), "utf8").catch(() => undefined);
    if (current !== undefined && sizeOf(current) > latest.size) return;
    const tmp = join(dir, `.${LATEST_FILE}.${process.pid}.tmp`);
    await writeDurably(tmp, latest.note, "w");
    await rename(tmp, join(dir, LATEST_FILE));
  }

  private async post(url: string, cp: SignedCheckpoint): Promise<void> {
    const res = await fetch(url, {
      method: "POST",
      headers: { ...this.targets.headers, "content-type": "text/plain; charset=utf-8" },
      body: cp.note,
      signal: AbortSignal.timeout(this.targets.timeoutMs ?? 5_000),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`checkpoint endpoint answered HTTP ${res.status}`);
  }
}

/** Every checkpoint note kept in an external directory (history first, then the latest file). */
export async function readExternalDirectory(dir: string): Promise<{ source: string; note: string }[]> {
  const out: { source: string; note: string }[] = [];
  const history = await readFile(join(dir, HISTORY_FILE), "utf8").catch(() => "");
  history.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      const parsed = JSON.parse(line) as { note?: unknown };
      if (typeof parsed.note === "string") out.push({ source: `${join(dir, HISTORY_FILE)}:${i + 1}`, note: parsed.note });
    } catch {
      // A torn last line (crash mid-write) carries nothing; the latest file still does.
    }
  });
  const latest = await readFile(join(dir, LATEST_FILE), "utf8").catch(() => undefined);
  if (latest !== undefined) out.push({ source: join(dir, LATEST_FILE), note: latest });
  return out;
}
