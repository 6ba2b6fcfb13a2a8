import type { Logger } from "pino";
import { GatewayError } from "../../core/index.js";
import type { IbmMqTransportConfig } from "./config.js";
import type { RecordEncoding } from "./fixed-width.js";
import {
  loadIbmMq,
  loadIbmMqOrExplain,
  type IbmMqLoader,
  type IbmMqModule,
  type MqErrorLike,
  type MqHConn,
  type MqHObj,
} from "./ibmmq-api.js";
import { mqError, needsReconnect, reasonOf } from "./ibmmq-reasons.js";
import type { MqTransport, TransportEvents, TransportRequest } from "./transport.js";

export interface IbmMqTransportOptions {
  readonly label: string;
  readonly config: IbmMqTransportConfig;
  readonly requestQueues: readonly string[];
  readonly fixedReplyQueues: readonly string[];
  readonly usesTemporaryReplyQueue: boolean;
  readonly logger: Logger;
  /** How to load `ibmmq`. Production uses the real import; tests inject a stand-in. */
  readonly loader?: IbmMqLoader;
}

interface Connection {
  readonly hConn: MqHConn;
  readonly generation: number;
  readonly requestHandles: Map<string, MqHObj>;
  /** Idle reply-queue handles: one MQGET with MQMO_MATCH_CORREL_ID runs per handle at a time. */
  readonly idle: Map<string, MqHObj[]>;
  /** Keeps the temporary dynamic reply queue alive; closing it deletes the queue. */
  readonly temporary: { readonly hObj: MqHObj; readonly name: string } | undefined;
}

interface ActiveGet {
  readonly queue: string;
  readonly hObj: MqHObj;
  readonly generation: number;
  finished: boolean;
}

const CCSID: Record<RecordEncoding, number> = { utf8: 1208, latin1: 819, ascii: 819 };
/** Idle handles kept per reply queue; more are closed after use. */
const MAX_IDLE_HANDLES = 32;

/**
 * IBM MQ over a client connection. Each request is an MQPUT (MQMT_REQUEST, ReplyToQ, a new
 * MsgId) followed by an asynchronous MQGET on the reply queue matching CorrelId = that MsgId:
 * the binding's `Get` (MQCB underneath), never `GetSync` with a wait, which would block the
 * event loop for the whole wait interval.
 */
export class IbmMqTransport implements MqTransport {
  readonly type = "ibmmq" as const;
  private readonly o: IbmMqTransportOptions;
  private mq: IbmMqModule | undefined;
  private conn: Connection | undefined;
  private generation = 0;
  private closing = false;
  private events: TransportEvents | undefined;
  private readonly gets = new Map<string, ActiveGet>();

  constructor(options: IbmMqTransportOptions) {
    this.o = options;
  }

  async connect(events: TransportEvents): Promise<void> {
    this.mq ??= await loadIbmMqOrExplain(this.o.loader ?? loadIbmMq, this.o.label);
    await this.dispose();
    this.closing = false;
    this.events = events;
    const mq = this.mq;
    const C = mq.MQC;
    const cfg = this.o.config;
    const generation = ++this.generation;

    const cno = new mq.MQCNO();
    // The bridge reconnects with its own backoff; the client's automatic reconnect would hide
    // broken connections from it and replay puts behind its back.
    cno.Options = num(C.MQCNO_CLIENT_BINDING) | num(C.MQCNO_RECONNECT_DISABLED);
    cno.ApplName = cfg.applName ?? "portcullis";
    if (cfg.ccdtUrl !== undefined) {
      cno.CCDTUrl = cfg.ccdtUrl;
    } else {
      const cd = new mq.MQCD();
      cd.ChannelName = cfg.channel;
      cd.ConnectionName = cfg.connName;
      if (cfg.tls) {
        cd.SSLCipherSpec = cfg.tls.cipherSpec;
        if (cfg.tls.certificateLabel !== undefined) cd.CertificateLabel = cfg.tls.certificateLabel;
      }
      cno.ClientConn = cd;
    }
    if (cfg.tls) {
      const sco = new mq.MQSCO();
      sco.KeyRepository = cfg.tls.keyRepository;
      if (cfg.tls.certificateLabel !== undefined) sco.CertificateLabel = cfg.tls.certificateLabel;
      cno.SSLConfig = sco;
    }
    if (cfg.user !== undefined) {
      // The binding sets MQCSP_AUTH_USER_ID_AND_PWD itself when a user id is present.
      const csp = new mq.MQCSP();
      csp.UserId = cfg.user;
      csp.Password = cfg.password ?? "";
      cno.SecurityParms = csp;
    }
    const target = `queue manager "${cfg.queueManager}"`;
    const hConn = await call<MqHConn>((cb) => mq.Connx(cfg.queueManager, cno, cb)).catch((err: unknown) => {
      throw mqError(this.o.label, "MQCONNX", target, err);
    });
    const conn: Connection = {
      hConn,
      generation,
      requestHandles: new Map(),
      idle: new Map(),
      temporary: undefined,
    };
    try {
      for (const q of this.o.requestQueues) {
        conn.requestHandles.set(
          q,
          await this.open(conn, q, num(C.MQOO_OUTPUT) | num(C.MQOO_FAIL_IF_QUIESCING)),
        );
      }
      for (const q of this.o.fixedReplyQueues) conn.idle.set(q, [await this.openInput(conn, q)]);
      let temporary: Connection["temporary"];
      if (this.o.usesTemporaryReplyQueue) {
        const od = new mq.MQOD();
        od.ObjectName = cfg.replyModelQueue ?? "SYSTEM.DEFAULT.MODEL.QUEUE";
        od.DynamicQName = cfg.dynamicQueuePrefix ?? "PORTCULLIS.*";
        const hObj = await call<MqHObj>((cb) =>
          mq.Open(hConn, od, num(C.MQOO_INPUT_SHARED) | num(C.MQOO_FAIL_IF_QUIESCING), cb),
        ).catch((err: unknown) => {
          throw mqError(this.o.label, "MQOPEN", `model queue ${String(od.ObjectName)}`, err);
        });
        temporary = { hObj, name: String(od.ObjectName).trim() };
      }
      this.conn = { ...conn, temporary };
    } catch (err) {
      await this.disconnect(conn);
      throw err;
    }
  }

  async send(req: TransportRequest): Promise<void> {
    const mq = this.mq;
    const conn = this.conn;
    if (!mq || !conn)
      throw new GatewayError("UPSTREAM_UNAVAILABLE", `${this.o.label}: not connected to the queue manager`);
    const C = mq.MQC;
    const hObj = conn.requestHandles.get(req.requestQueue);
    const replyQueue = req.replyQueue ?? conn.temporary?.name;
    if (!hObj || replyQueue === undefined) {
      throw new GatewayError(
        "INTERNAL",
        `${this.o.label}: queue ${req.requestQueue} was not opened at connect`,
      );
    }
    const md = new mq.MQMD();
    md.MsgType = C.MQMT_REQUEST;
    md.Format = C.MQFMT_STRING;
    md.CodedCharSetId = CCSID[req.charset];
    md.ReplyToQ = replyQueue;
    // The reply inherits the remaining expiry, so replies nobody waits for do not pile up either.
    md.Report = C.MQRO_PASS_DISCARD_AND_EXPIRY;
    md.Expiry = req.expiryMs > 0 ? Math.max(1, Math.ceil(req.expiryMs / 100)) : C.MQEI_UNLIMITED;
    md.Persistence = req.persistent ? C.MQPER_PERSISTENT : C.MQPER_NOT_PERSISTENT;
    md.Priority = req.priority ?? C.MQPRI_PRIORITY_AS_Q_DEF;
    const pmo = new mq.MQPMO();
    pmo.Options = num(C.MQPMO_NO_SYNCPOINT) | num(C.MQPMO_NEW_MSG_ID) | num(C.MQPMO_FAIL_IF_QUIESCING);
    let hMsg: unknown;
    if (req.traceparent) {
      // W3C trace context travels as a message property, where MQ-aware tracers look for it.
      try {
        hMsg = mq.CrtMh(conn.hConn, new mq.MQCMHO());
        mq.SetMp(conn.hConn, hMsg, new mq.MQSMPO(), "traceparent", new mq.MQPD(), req.traceparent);
        pmo.OriginalMsgHandle = hMsg;
      } catch (err) {
        this.o.logger.warn(
          { err: mqError(this.o.label, "MQSETMP", "", err).message },
          "traceparent not propagated",
        );
      }
    }
    try {
      await call<void>((cb) => mq.Put(hObj, md, pmo, req.body, cb));
    } catch (err) {
      const mapped = mqError(this.o.label, "MQPUT", `queue ${req.requestQueue}`, err);
      // Reported after this rejection lands, so the caller hears "put failed" (not sent), not "lost while waiting".
      if (needsReconnect(err)) setImmediate(() => this.lost(conn.generation, mapped));
      throw mapped;
    } finally {
      if (hMsg !== undefined) {
        try {
          mq.DltMh(conn.hConn, hMsg, new mq.MQDMHO());
        } catch {
          // A leaked message handle is freed with the connection.
        }
      }
    }
    // The binding copies the queue manager's new MsgId back into md; copy it out of its buffer.
    const msgId = Buffer.from(md.MsgId as Buffer);
    void this.startGet(conn, req.id, replyQueue, msgId, req.listenMs, req.charset);
  }

  abandon(id: string): void {
    const g = this.gets.get(id);
    if (!g || g.finished) return;
    g.finished = true;
    this.gets.delete(id);
    this.done(g);
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.dispose();
  }

  private async startGet(
    conn: Connection,
    id: string,
    queue: string,
    msgId: Buffer,
    listenMs: number,
    charset: RecordEncoding,
  ): Promise<void> {
    const mq = this.mq!;
    const C = mq.MQC;
    let hObj: MqHObj;
    try {
      hObj = await this.acquire(conn, queue);
    } catch (err) {
      this.fail(
        conn,
        id,
        err instanceof GatewayError ? err : mqError(this.o.label, "MQOPEN", `queue ${queue}`, err),
        err,
      );
      return;
    }
    if (conn !== this.conn) return;
    const g: ActiveGet = { queue, hObj, generation: conn.generation, finished: false };
    this.gets.set(id, g);
    const md = new mq.MQMD();
    md.CorrelId = msgId;
    md.CodedCharSetId = CCSID[charset];
    const gmo = new mq.MQGMO();
    gmo.Options =
      num(C.MQGMO_WAIT) | num(C.MQGMO_NO_SYNCPOINT) | num(C.MQGMO_CONVERT) | num(C.MQGMO_FAIL_IF_QUIESCING);
    gmo.MatchOptions = C.MQMO_MATCH_CORREL_ID;
    gmo.WaitInterval = Math.max(1, Math.min(listenMs, 2_147_483_647));
    try {
      mq.Get(hObj, md, gmo, (err, _h, _gmo, rmd, data) => {
        if (g.finished) return;
        g.finished = true;
        this.gets.delete(id);
        if (err) {
          this.onGetError(conn, id, queue, err);
          if (needsReconnect(err)) return;
        } else {
          // The binding reuses its buffers after this callback returns.
          const body = Buffer.from(data ?? Buffer.alloc(0));
          const correl = rmd?.CorrelId;
          const matches = Buffer.isBuffer(correl) && correl.equals(msgId);
          this.events?.reply({ id: matches ? id : undefined, body });
        }
        this.done(g);
      });
    } catch (err) {
      g.finished = true;
      this.gets.delete(id);
      this.fail(conn, id, mqError(this.o.label, "MQGET", `queue ${queue}`, err), err);
    }
  }

  private onGetError(conn: Connection, id: string, queue: string, err: MqErrorLike): void {
    // No message within the wait interval: the bridge's own timer decides what the caller sees.
    if (reasonOf(err) === 2033) return;
    this.fail(conn, id, mqError(this.o.label, "MQGET", `queue ${queue}`, err), err);
  }

  private fail(conn: Connection, id: string, mapped: GatewayError, raw: unknown): void {
    if (needsReconnect(raw)) this.lost(conn.generation, mapped);
    else this.events?.failed(id, mapped);
  }

  /** Stops the consumer outside the callback that delivered, then returns the handle to the pool. */
  private done(g: ActiveGet): void {
    const mq = this.mq!;
    setImmediate(() => {
      try {
        mq.GetDone(g.hObj, () => this.release(g));
      } catch {
        this.release(g);
      }
    });
  }

  private release(g: ActiveGet): void {
    const conn = this.conn;
    if (!conn || conn.generation !== g.generation) return;
    const idle = conn.idle.get(g.queue) ?? [];
    if (idle.length < MAX_IDLE_HANDLES) {
      idle.push(g.hObj);
      conn.idle.set(g.queue, idle);
    } else {
      this.mq!.Close(g.hObj, 0, () => undefined);
    }
  }

  private async acquire(conn: Connection, queue: string): Promise<MqHObj> {
    const idle = conn.idle.get(queue);
    const h = idle?.pop();
    if (h) return h;
    return this.openInput(conn, queue);
  }

  private openInput(conn: Connection, queue: string): Promise<MqHObj> {
    const C = this.mq!.MQC;
    return this.open(conn, queue, num(C.MQOO_INPUT_SHARED) | num(C.MQOO_FAIL_IF_QUIESCING));
  }

  private async open(conn: Connection, queue: string, options: number): Promise<MqHObj> {
    const mq = this.mq!;
    const od = new mq.MQOD();
    od.ObjectName = queue;
    od.ObjectType = mq.MQC.MQOT_Q;
    return call<MqHObj>((cb) => mq.Open(conn.hConn, od, options, cb)).catch((err: unknown) => {
      throw mqError(this.o.label, "MQOPEN", `queue ${queue}`, err);
    });
  }

  private lost(generation: number, err: GatewayError): void {
    if (this.closing || generation !== this.generation || !this.conn) return;
    const conn = this.conn;
    this.conn = undefined;
    void this.disconnect(conn, this.takeActiveGets());
    this.events?.lost(err);
  }

  private async dispose(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    const active = this.takeActiveGets();
    if (conn) await this.disconnect(conn, active);
  }

  /** Stops every running MQGET consumer and hands back its handle for closing. */
  private takeActiveGets(): MqHObj[] {
    const handles: MqHObj[] = [];
    for (const g of this.gets.values()) {
      g.finished = true;
      handles.push(g.hObj);
      try {
        this.mq!.GetDone(g.hObj);
      } catch {
        // The connection may already be gone; closing the handle below ends the consumer anyway.
      }
    }
    this.gets.clear();
    return handles;
  }

  /** Best effort: after a broken connection every verb fails, and that is fine here. */
  private async disconnect(conn: Connection, active: readonly MqHObj[] = []): Promise<void> {
    const mq = this.mq!;
    const handles = [...conn.requestHandles.values(), ...[...conn.idle.values()].flat(), ...active];
    for (const h of handles) await call<void>((cb) => mq.Close(h, 0, cb)).catch(() => undefined);
    if (conn.temporary) {
      await call<void>((cb) => mq.Close(conn.temporary!.hObj, num(mq.MQC.MQCO_DELETE_PURGE), cb)).catch(
        () => undefined,
      );
    }
    await call<void>((cb) => mq.Disc(conn.hConn, cb)).catch(() => undefined);
  }
}

function num(v: number | string | undefined): number {
  if (typeof v !== "number")
    throw new GatewayError("INTERNAL", `ibmmq constant is not a number: ${String(v)}`);
  return v;
}

function call<T>(fn: (cb: (err: MqErrorLike | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(err as unknown as Error) : resolve(value)));
    } catch (err) {
      reject(err as Error);
    }
  });
}
