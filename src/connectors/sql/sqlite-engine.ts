import { fork, type ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { childEntry } from "../../core/child-entry.js";
import type { Health } from "../../core/index.js";
import { abortFailure } from "./deadline.js";
import { SqlFailure, type Engine, type ExecRequest, type ExecResult } from "./engine.js";
import type {
  ChildFailure,
  ChildRequest,
  ChildRequestBody,
  ChildResponse,
  DeclaredStatement,
} from "./sqlite-protocol.js";

export interface SqliteEngineOptions {
  /** Absolute path of the database file. */
  readonly file: string;
  readonly busyTimeoutMs: number;
  /** Most worker processes; each runs one statement at a time. */
  readonly processes: number;
  readonly statements: readonly DeclaredStatement[];
  readonly logger: Logger;
}

/** Raised by `SqliteEngine.open` when a declared statement does not prepare against the file. */
export class SqliteInitError extends Error {
  override readonly name = "SqliteInitError";
  readonly failure: ChildFailure;
  constructor(failure: ChildFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

type WorkerState = "starting" | "idle" | "busy" | "dead";

interface Worker {
  readonly proc: ChildProcess;
  state: WorkerState;
  inflight: { id: number; settle: (res: ChildResponse) => void } | undefined;
  job: Job | undefined;
}

interface Job {
  readonly msg: Extract<ChildRequestBody, { op: "exec" | "ping" }>;
  readonly resolve: (result: ExecResult | null) => void;
  readonly reject: (err: SqlFailure) => void;
  worker: Worker | undefined;
  settled: boolean;
  cleanup: () => void;
}

/**
 * SQLite behind a small pool of worker processes. better-sqlite3 is synchronous, and one native
 * sqlite3_step can run forever (a recursive CTE that never yields a row); in-process neither a
 * timer nor Worker.terminate() can stop it. A child process can be SIGKILLed, so a call that
 * overruns its budget, or whose caller cancels, kills its worker and a fresh one takes over.
 * SQLite's journal keeps the file consistent when a writer dies mid-statement.
 */
export class SqliteEngine implements Engine {
  readonly name = "sqlite" as const;
  private readonly opts: SqliteEngineOptions;
  private readonly entry = childEntry(import.meta.url, "sqlite-child");
  private workers: Worker[] = [];
  private queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(opts: SqliteEngineOptions) {
    this.opts = opts;
  }

  /** Starts the first worker and prepares every declared statement in it, so bad SQL fails at load. */
  static async open(opts: SqliteEngineOptions): Promise<SqliteEngine> {
    const engine = new SqliteEngine(opts);
    const worker = engine.spawn();
    const res = await engine.send(worker, {
      op: "init",
      file: opts.file,
      busyTimeoutMs: opts.busyTimeoutMs,
      statements: opts.statements,
    });
    if (!res.ok) {
      await engine.close();
      throw new SqliteInitError(res.error);
    }
    if (worker.state === "starting") worker.state = "idle";
    // Warm the rest of the pool now, so a second concurrent call does not wait for a process start.
    for (let i = 1; i < opts.processes; i++) engine.startWorker();
    return engine;
  }

  execute(req: ExecRequest): Promise<ExecResult> {
    const msg = {
      op: "exec" as const,
      key: req.key,
      sql: req.sql,
      params: req.params,
      readOnly: req.readOnly,
      maxRows: req.maxRows,
      maxBytes: req.maxBytes,
    };
    return this.enqueue(msg, req.timeoutMs, req.signal).then((r) => {
      if (r === null) throw new SqlFailure("sql", "the SQLite worker returned no result");
      return r;
    });
  }

  async health(timeoutMs: number): Promise<Health> {
    // Busy is not unhealthy: a long legitimate query must not fail readiness.
    if (this.workers.length > 0 && this.workers.every((w) => w.state === "busy")) {
      return { ok: true, detail: "all SQLite workers busy" };
    }
    try {
      await this.enqueue({ op: "ping" }, timeoutMs, undefined);
      return { ok: true };
    } catch (err) {
      const f = err instanceof SqlFailure ? err : undefined;
      return {
        ok: false,
        detail: f?.category === "timeout" ? "all SQLite workers busy" : (f?.message ?? "unavailable"),
      };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0))
      this.settle(job, new SqlFailure("unavailable", "the connector is closing"));
    const exits = this.workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.proc.exitCode !== null || w.proc.signalCode !== null) return resolve();
          w.proc.once("exit", () => resolve());
          // A worker mid-statement would finish it first; closing does not wait for that.
          w.proc.kill("SIGKILL");
        }),
    );
    for (const w of this.workers)
      if (w.job) this.settle(w.job, new SqlFailure("unavailable", "the connector is closing"));
    await Promise.all(exits);
    this.workers = [];
  }

  private enqueue(
    msg: Job["msg"],
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<ExecResult | null> {
    if (this.closed) return Promise.reject(new SqlFailure("unavailable", "the connector is closed"));
    if (signal?.aborted) return Promise.reject(abortFailure(signal));
    return new Promise((resolve, reject) => {
      const job: Job = { msg, resolve, reject, worker: undefined, settled: false, cleanup: () => {} };
      const timer = setTimeout(() => {
        const where = job.worker ? "ran" : "waited for a free SQLite worker";
        this.settle(
          job,
          new SqlFailure("timeout", `the statement ${where} longer than ${timeoutMs} ms and was stopped`),
        );
      }, timeoutMs);
      const onAbort = () => this.settle(job, abortFailure(signal!));
      signal?.addEventListener("abort", onAbort, { once: true });
      job.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Settles a job once. A job that fails while its worker is running it takes the worker down. */
  private settle(job: Job, outcome: SqlFailure | { result: ExecResult | null }): void {
    if (job.settled) return;
    job.settled = true;
    job.cleanup();
    const worker = job.worker;
    if (outcome instanceof SqlFailure) {
      if (
        worker &&
        worker.job === job &&
        (outcome.category === "timeout" || outcome.category === "aborted")
      ) {
        this.kill(worker, outcome.category);
      }
      const i = this.queue.indexOf(job);
      if (i >= 0) this.queue.splice(i, 1);
      job.reject(outcome);
    } else {
      job.resolve(outcome.result);
    }
    this.dispatch();
  }

  private dispatch(): void {
    if (this.closed) return;
    while (this.queue.length > 0) {
      const idle = this.workers.find((w) => w.state === "idle");
      if (!idle) break;
      this.run(idle, this.queue.shift()!);
    }
    const starting = this.workers.filter((w) => w.state === "starting").length;
    if (this.queue.length > starting && this.workers.length < this.opts.processes) this.startWorker();
  }

  private run(worker: Worker, job: Job): void {
    worker.state = "busy";
    worker.job = job;
    job.worker = worker;
    void this.send(worker, job.msg).then((res) => {
      if (worker.job === job) worker.job = undefined;
      if (worker.state === "busy") worker.state = "idle";
      this.settle(job, res.ok ? { result: res.result } : failureOf(res.error));
    });
  }

  private startWorker(): void {
    const worker = this.spawn();
    void this.send(worker, {
      op: "init",
      file: this.opts.file,
      busyTimeoutMs: this.opts.busyTimeoutMs,
      statements: this.opts.statements,
    }).then((res) => {
      if (res.ok) {
        if (worker.state !== "starting") return;
        worker.state = "idle";
        this.dispatch();
        return;
      }
      this.kill(worker, "init failed");
      // The file became unusable (deleted, corrupted) or workers cannot start: fail what waits
      // instead of respawning in a loop. The next call tries again.
      if (this.workers.some((w) => w.state === "idle" || w.state === "busy")) return;
      const failure = failureOf(res.error);
      for (const job of this.queue.splice(0)) {
        this.settle(job, new SqlFailure(failure.category, failure.message, failure.dbCode));
      }
    });
  }

  private spawn(): Worker {
    const proc = fork(this.entry.path, [], {
      execArgv: this.entry.execArgv,
      serialization: "advanced",
      // stdout may be the MCP stdio stream: a worker never writes to it.
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const worker: Worker = { proc, state: "starting", inflight: undefined, job: undefined };
    this.workers.push(worker);
    proc.on("message", (res: ChildResponse) => {
      const inflight = worker.inflight;
      if (inflight && inflight.id === res.id) {
        worker.inflight = undefined;
        inflight.settle(res);
      }
    });
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      this.opts.logger.warn(
        { workerPid: proc.pid, stderr: chunk.slice(0, 2_000) },
        "sqlite worker wrote to stderr",
      );
    });
    const onGone = (why: string) => {
      const wasDead = worker.state === "dead";
      const wasStarting = worker.state === "starting";
      this.remove(worker);
      const inflight = worker.inflight;
      worker.inflight = undefined;
      if (inflight && !wasDead) {
        inflight.settle({
          id: inflight.id,
          ok: false,
          error: {
            category: "unavailable",
            message: `the SQLite worker process exited unexpectedly (${why})`,
          },
        });
      }
      // A worker that dies while starting is handled by its init continuation (no respawn loop).
      if (!wasStarting) this.dispatch();
    };
    proc.on("exit", (code, signal) => onGone(signal ?? `code ${code}`));
    proc.on("error", (err) => {
      this.opts.logger.error({ err }, "sqlite worker process error");
      onGone("spawn error");
    });
    return worker;
  }

  private send(worker: Worker, msg: ChildRequestBody): Promise<ChildResponse> {
    const id = this.nextId++;
    return new Promise((settle) => {
      worker.inflight = { id, settle };
      try {
        worker.proc.send({ ...msg, id } as ChildRequest);
      } catch {
        worker.inflight = undefined;
        settle({
          id,
          ok: false,
          error: { category: "unavailable", message: "the SQLite worker process is gone" },
        });
      }
    });
  }

  private kill(worker: Worker, why: string): void {
    if (worker.state === "dead") return;
    this.opts.logger.warn({ workerPid: worker.proc.pid, why }, "killing sqlite worker");
    worker.state = "dead";
    worker.job = undefined;
    this.remove(worker);
    worker.proc.kill("SIGKILL");
    // Keep one warm worker, so the call after a killed one does not pay for a process start.
    if (!this.closed && this.workers.length === 0 && why !== "init failed") this.startWorker();
  }

  private remove(worker: Worker): void {
    worker.state = "dead";
    this.workers = this.workers.filter((w) => w !== worker);
  }
}

function failureOf(f: ChildFailure): SqlFailure {
  return new SqlFailure(f.category, f.message, f.dbCode);
}
