import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { GatewayError, isGatewayError } from "../../core/index.js";
import type { MqTransport, TransportEvents, TransportReply, TransportRequest } from "./transport.js";

/**
 * The request/reply bridge shared by every transport: the correlation map, the in-flight limit,
 * wait budgets, the late-reply store, and reconnecting with backoff and jitter. Transports only
 * put messages and report replies; everything that decides what a caller sees lives here.
 */

export interface BridgeOptions {
  /** `connector "name" (mq)`, the prefix of every message. */
  readonly label: string;
  readonly transport: MqTransport;
  readonly logger: Logger;
  readonly maxInFlight: number;
  readonly maxReplyBytes: number;
  readonly lateReplyTtlMs: number;
  readonly lateReplyMaxEntries: number;
  readonly reconnectInitialDelayMs: number;
  readonly reconnectMaxDelayMs: number;
}

export type BridgeRequest = Omit<TransportRequest, "id" | "listenMs">;

export interface RequestOptions {
  readonly waitMs: number;
  /** Park the request and answer "pending" when the wait budget runs out, instead of failing. */
  readonly pendingOnTimeout: boolean;
  /** Who asked: only they may fetch a parked reply. */
  readonly subject: string;
  readonly signal: AbortSignal;
}

export type RequestOutcome =
  | { readonly status: "reply"; readonly id: string; readonly body: Buffer }
  | { readonly status: "pending"; readonly id: string; readonly expiresAt: number };

export type FetchOutcome =
  | { readonly status: "reply"; readonly operation: string; readonly body: Buffer }
  | { readonly status: "pending"; readonly operation: string; readonly expiresAt: number };

export interface BridgeStats {
  state: "connecting" | "up" | "down" | "closed";
  inFlight: number;
  parked: number;
  sent: number;
  replied: number;
  timedOut: number;
  busyRefused: number;
  lateStored: number;
  lateDropped: number;
  duplicateDropped: number;
  unknownDropped: number;
  expiredDropped: number;
  oversizeDropped: number;
  reconnects: number;
}

interface InFlight {
  readonly id: string;
  readonly operation: string;
  readonly queue: string;
  readonly subject: string;
  readonly waitMs: number;
  readonly pendingOnTimeout: boolean;
  resolve(outcome: RequestOutcome): void;
  reject(err: GatewayError): void;
  timer: NodeJS.Timeout | undefined;
  /** Handed to the transport; before that, running out of time means "not sent", never "pending". */
  sent: boolean;
}

interface Parked {
  readonly id: string;
  readonly operation: string;
  readonly subject: string;
  readonly expiresAt: number;
  reply: Buffer | undefined;
  error: GatewayError | undefined;
  readonly timer: NodeJS.Timeout;
  readonly waiters: Set<() => void>;
}

type Gone = "answered" | "abandoned" | "expired";

/** Remembered finished requests, so a second or late reply is told apart from a stranger's. */
const RECENT_MAX = 20_000;

export class MqBridge {
  private readonly o: BridgeOptions;
  private readonly inFlight = new Map<string, InFlight>();
  private readonly parked = new Map<string, Parked>();
  private readonly recent = new Map<string, { gone: Gone; until: number }>();
  private readonly readyWaiters = new Set<{ resolve(): void; reject(err: GatewayError): void }>();
  private state: BridgeStats["state"] = "connecting";
  private attempt = 0;
  private lastError: GatewayError | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly counters = {
    sent: 0,
    replied: 0,
    timedOut: 0,
    busyRefused: 0,
    lateStored: 0,
    lateDropped: 0,
    duplicateDropped: 0,
    unknownDropped: 0,
    expiredDropped: 0,
    oversizeDropped: 0,
    reconnects: 0,
  };
  private readonly events: TransportEvents;

  constructor(options: BridgeOptions) {
    this.o = options;
    this.events = {
      reply: (r) => this.onReply(r),
      failed: (id, err) => this.onFailed(id, err),
      lost: (err) => this.onLost(err),
    };
  }

  /** First connection. A failure here is the connector's failure to start. */
  async start(): Promise<void> {
    try {
      await this.o.transport.connect(this.events);
    } catch (err) {
      this.state = "closed";
      await this.o.transport.close().catch(() => undefined);
      throw err;
    }
    if (this.state === "connecting") this.state = "up";
  }

  async request(req: BridgeRequest, opts: RequestOptions): Promise<RequestOutcome> {
    if (this.state === "closed") throw this.shuttingDown(req.operation);
    throwIfAborted(opts.signal, this.o.label, req.operation);
    if (this.inFlight.size >= this.o.maxInFlight) {
      this.counters.busyRefused++;
      throw new GatewayError(
        "BUSY",
        `${this.o.label}: ${this.inFlight.size} requests already wait for replies (maxInFlight ${this.o.maxInFlight}); retry shortly`,
      );
    }
    const id = randomUUID();
    const startedAt = Date.now();
    const deadline = startedAt + opts.waitMs;
    return new Promise<RequestOutcome>((resolve, reject) => {
      const entry: InFlight = {
        id,
        operation: req.operation,
        queue: req.requestQueue,
        subject: opts.subject,
        waitMs: opts.waitMs,
        pendingOnTimeout: opts.pendingOnTimeout,
        resolve: (o) => {
          cleanup();
          resolve(o);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
        timer: undefined,
        sent: false,
      };
      const onAbort = () => {
        if (!this.inFlight.has(id)) return;
        this.finish(id, "abandoned");
        this.o.transport.abandon(id);
        entry.reject(abortError(opts.signal, this.o.label, req.operation, id));
      };
      const cleanup = () => {
        if (entry.timer) clearTimeout(entry.timer);
        opts.signal.removeEventListener("abort", onAbort);
      };
      this.inFlight.set(id, entry);
      opts.signal.addEventListener("abort", onAbort, { once: true });
      entry.timer = setTimeout(() => this.onWaitExpired(id), opts.waitMs);
      // Registered before the put: a fast responder may answer before the broker confirms.
      this.waitUntilUp(deadline, opts.signal, req.operation)
        .then(() => {
          if (!this.inFlight.has(id)) return undefined;
          entry.sent = true;
          this.counters.sent++;
          return this.o.transport.send({ ...req, id, listenMs: this.listenMs(opts, deadline) });
        })
        .catch((err: unknown) => {
          if (!this.inFlight.has(id)) return;
          this.inFlight.delete(id);
          entry.reject(
            isGatewayError(err)
              ? err
              : new GatewayError("UPSTREAM_ERROR", `${this.o.label}: put failed`, { cause: err }),
          );
        });
    });
  }

  /** The late-reply store: a parked request's reply, or "still pending". Only its own caller may fetch it. */
  async fetch(id: string, subject: string, waitMs: number, signal: AbortSignal): Promise<FetchOutcome> {
    if (this.state === "closed") throw this.shuttingDown("get_reply");
    let entry = this.parked.get(id);
    if (!entry || entry.subject !== subject) {
      // Another caller's request id answers exactly like an unknown one: ids must not be probe-able.
      throw new GatewayError(
        "INVALID_ARGUMENTS",
        `${this.o.label}: no pending request "${id.slice(0, 64)}" (unknown, expired after ${this.o.lateReplyTtlMs} ms, or already fetched)`,
      );
    }
    if (!entry.reply && !entry.error && waitMs > 0) {
      const e = entry;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          e.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, waitMs);
        signal.addEventListener("abort", done, { once: true });
        e.waiters.add(done);
      });
      throwIfAborted(signal, this.o.label, "get_reply");
      entry = this.parked.get(id);
      if (!entry)
        throw new GatewayError("UPSTREAM_TIMEOUT", `${this.o.label}: request "${id}" expired while waiting`);
    }
    if (entry.error) {
      this.dropParked(entry, "answered");
      throw entry.error;
    }
    if (entry.reply) {
      this.dropParked(entry, "answered");
      return { status: "reply", operation: entry.operation, body: entry.reply };
    }
    return { status: "pending", operation: entry.operation, expiresAt: entry.expiresAt };
  }

  stats(): BridgeStats {
    return { state: this.state, inFlight: this.inFlight.size, parked: this.parked.size, ...this.counters };
  }

  health(): { ok: boolean; detail: string } {
    const s = this.stats();
    const why =
      s.state === "down" && this.lastError
        ? ` (reconnect attempt ${this.attempt}: ${this.lastError.message})`
        : "";
    return {
      ok: s.state === "up",
      detail: `${s.state}${why}; in flight ${s.inFlight}, pending ${s.parked}, late dropped ${s.lateDropped}, unknown dropped ${s.unknownDropped}`,
    };
  }

  /** Answers every waiting call (SHUTTING_DOWN), forgets parked requests, closes the transport. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const entry of [...this.inFlight.values()]) {
      this.inFlight.delete(entry.id);
      entry.reject(this.shuttingDown(entry.operation, entry.id));
    }
    for (const p of [...this.parked.values()]) {
      clearTimeout(p.timer);
      for (const w of p.waiters) w();
    }
    this.parked.clear();
    for (const w of [...this.readyWaiters]) w.reject(this.shuttingDown("connect"));
    await this.o.transport.close();
  }

  private listenMs(opts: RequestOptions, deadline: number): number {
    const remaining = Math.max(1, deadline - Date.now());
    return opts.pendingOnTimeout ? remaining + this.o.lateReplyTtlMs : remaining;
  }

  private onWaitExpired(id: string): void {
    const entry = this.inFlight.get(id);
    if (!entry) return;
    this.inFlight.delete(id);
    if (!entry.sent) {
      entry.reject(this.notConnected());
      return;
    }
    this.counters.timedOut++;
    if (entry.pendingOnTimeout && this.parked.size < this.o.lateReplyMaxEntries && this.state !== "closed") {
      const expiresAt = Date.now() + this.o.lateReplyTtlMs;
      const timer = setTimeout(() => this.onParkedExpired(id), this.o.lateReplyTtlMs);
      timer.unref();
      this.parked.set(id, {
        id,
        operation: entry.operation,
        subject: entry.subject,
        expiresAt,
        reply: undefined,
        error: undefined,
        timer,
        waiters: new Set(),
      });
      entry.resolve({ status: "pending", id, expiresAt });
      return;
    }
    this.finish(id, "abandoned");
    this.o.transport.abandon(id);
    const full = entry.pendingOnTimeout
      ? ` (the late-reply store is full: ${this.o.lateReplyMaxEntries} pending)`
      : "";
    entry.reject(
      new GatewayError(
        "UPSTREAM_TIMEOUT",
        `${this.o.label}: no reply to ${entry.operation} within ${entry.waitMs} ms from queue ${entry.queue}${full}; the request (id ${id}) may still be processed`,
      ),
    );
  }

  private onParkedExpired(id: string): void {
    const p = this.parked.get(id);
    if (!p) return;
    if (!p.reply) this.o.transport.abandon(id);
    this.o.logger.warn(
      { requestId: id, operation: p.operation, fetched: false, replied: p.reply !== undefined },
      "mq pending request expired",
    );
    this.dropParked(p, "expired");
    for (const w of p.waiters) w();
  }

  private dropParked(p: Parked, gone: Gone): void {
    clearTimeout(p.timer);
    this.parked.delete(p.id);
    this.finish(p.id, gone);
  }

  private finish(id: string, gone: Gone): void {
    this.recent.set(id, { gone, until: Date.now() + Math.max(this.o.lateReplyTtlMs, 60_000) });
    if (this.recent.size > RECENT_MAX) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
  }

  private onReply(r: TransportReply): void {
    const id = r.id;
    const log = this.o.logger;
    if (id === undefined) {
      this.counters.unknownDropped++;
      log.warn({ bytes: r.body.length }, "mq reply without a correlation id dropped");
      return;
    }
    const oversize = r.body.length > this.o.maxReplyBytes;
    const entry = this.inFlight.get(id);
    if (entry) {
      this.inFlight.delete(id);
      this.finish(id, "answered");
      if (oversize) {
        this.counters.oversizeDropped++;
        entry.reject(
          new GatewayError(
            "UPSTREAM_BAD_RESPONSE",
            `${this.o.label}: reply to ${entry.operation} is ${r.body.length} bytes, over maxReplyBytes ${this.o.maxReplyBytes}`,
          ),
        );
        return;
      }
      this.counters.replied++;
      entry.resolve({ status: "reply", id, body: r.body });
      return;
    }
    const parked = this.parked.get(id);
    if (parked) {
      if (parked.reply || parked.error) {
        this.counters.duplicateDropped++;
        log.info({ requestId: id }, "mq duplicate reply ignored");
        return;
      }
      if (oversize) {
        this.counters.oversizeDropped++;
        parked.error = new GatewayError(
          "UPSTREAM_BAD_RESPONSE",
          `${this.o.label}: reply to ${parked.operation} is ${r.body.length} bytes, over maxReplyBytes ${this.o.maxReplyBytes}`,
        );
      } else {
        this.counters.lateStored++;
        parked.reply = r.body;
      }
      for (const w of parked.waiters) w();
      return;
    }
    const recent = this.recent.get(id);
    const gone = recent && recent.until > Date.now() ? recent.gone : undefined;
    if (gone === "answered") {
      this.counters.duplicateDropped++;
      log.info({ requestId: id }, "mq duplicate reply ignored");
    } else if (gone === "abandoned") {
      this.counters.lateDropped++;
      log.warn({ requestId: id, bytes: r.body.length }, "mq late reply dropped: its caller stopped waiting");
    } else if (gone === "expired") {
      this.counters.expiredDropped++;
      log.warn({ requestId: id, bytes: r.body.length }, "mq reply dropped: its pending request expired");
    } else {
      this.counters.unknownDropped++;
      log.warn(
        { requestId: id.slice(0, 64), bytes: r.body.length },
        "mq reply for an unknown request dropped",
      );
    }
  }

  private onFailed(id: string, err: GatewayError): void {
    const entry = this.inFlight.get(id);
    if (entry) {
      this.inFlight.delete(id);
      this.finish(id, "abandoned");
      entry.reject(err);
      return;
    }
    const parked = this.parked.get(id);
    if (parked && !parked.reply && !parked.error) {
      parked.error = err;
      for (const w of parked.waiters) w();
    }
  }

  private onLost(err: GatewayError): void {
    if (this.state !== "up") return;
    this.state = "down";
    this.lastError = err;
    this.o.logger.warn({ err: err.message }, "mq connection lost; reconnecting");
    for (const entry of [...this.inFlight.values()]) {
      this.inFlight.delete(entry.id);
      this.finish(entry.id, "abandoned");
      entry.reject(
        new GatewayError(
          "UPSTREAM_UNAVAILABLE",
          `${this.o.label}: connection lost while waiting for the reply to ${entry.operation}; the request (id ${entry.id}) may have been processed`,
          { cause: err },
        ),
      );
    }
    for (const p of this.parked.values()) {
      if (p.reply || p.error) continue;
      p.error = new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${this.o.label}: connection lost before the reply to ${p.operation} arrived; the request (id ${p.id}) may have been processed`,
        { cause: err },
      );
      for (const w of p.waiters) w();
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.state === "closed") return;
    this.attempt++;
    const base = Math.min(
      this.o.reconnectMaxDelayMs,
      this.o.reconnectInitialDelayMs * 2 ** Math.min(this.attempt - 1, 20),
    );
    // Jitter keeps a fleet of gateways from reconnecting to a recovering broker in lockstep.
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.state === "closed") return;
    try {
      await this.o.transport.connect(this.events);
    } catch (err) {
      this.lastError = isGatewayError(err)
        ? err
        : new GatewayError("UPSTREAM_UNAVAILABLE", "reconnect failed", { cause: err });
      this.o.logger.warn({ attempt: this.attempt, err: this.lastError.message }, "mq reconnect failed");
      this.scheduleReconnect();
      return;
    }
    // close() may have run while connect() was in progress.
    if ((this.state as BridgeStats["state"]) === "closed") {
      await this.o.transport.close().catch(() => undefined);
      return;
    }
    this.o.logger.info({ attempts: this.attempt }, "mq reconnected");
    this.counters.reconnects++;
    this.state = "up";
    this.attempt = 0;
    this.lastError = undefined;
    for (const w of [...this.readyWaiters]) w.resolve();
  }

  private waitUntilUp(deadline: number, signal: AbortSignal, operation: string): Promise<void> {
    if (this.state === "up") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(this.shuttingDown(operation));
    return new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          done();
          resolve();
        },
        reject: (e: GatewayError) => {
          done();
          reject(e);
        },
      };
      const onTimeout = () => w.reject(this.notConnected());
      const t = setTimeout(onTimeout, Math.max(0, deadline - Date.now()));
      signal.addEventListener("abort", onTimeout, { once: true });
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", onTimeout);
        this.readyWaiters.delete(w);
      };
      this.readyWaiters.add(w);
    });
  }

  private notConnected(): GatewayError {
    return new GatewayError(
      "UPSTREAM_UNAVAILABLE",
      `${this.o.label}: not connected to the message broker (reconnect attempt ${this.attempt}${this.lastError ? `: ${this.lastError.message}` : ""}); the request was not sent`,
      { cause: this.lastError },
    );
  }

  private shuttingDown(operation: string, id?: string): GatewayError {
    return new GatewayError(
      "SHUTTING_DOWN",
      `${this.o.label}: shutting down; ${operation} ${id ? `(request id ${id}) got no reply and may have been processed` : "was not sent"}`,
    );
  }
}

function throwIfAborted(signal: AbortSignal, label: string, operation: string): void {
  if (signal.aborted) throw abortError(signal, label, operation, undefined);
}

function abortError(
  signal: AbortSignal,
  label: string,
  operation: string,
  id: string | undefined,
): GatewayError {
  const reason: unknown = signal.reason;
  if (isGatewayError(reason)) return reason;
  return new GatewayError(
    "UPSTREAM_TIMEOUT",
    `${label}: ${operation} was cancelled before its reply arrived${id ? `; the request (id ${id}) may still be processed` : ""}`,
    { cause: reason },
  );
}
