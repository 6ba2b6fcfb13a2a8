import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type {
  IbmMqModule,
  MqCallback,
  MqGetCallback,
  MqHConn,
  MqHObj,
  MqStruct,
} from "../../../src/connectors/mq/ibmmq-api.js";

/**
 * TEST DOUBLE — a stand-in for IBM's `ibmmq` module, because no IBM MQ queue manager (nor its C
 * client library) exists on this machine. It is injected only through the `ibmmqLoader` test
 * seam of createMqConnector; no configuration can select it.
 *
 * It uses the REAL constants (`ibmmq/lib/mqidefs.js`) and the REAL structure classes (MQMD,
 * MQGMO, ...: sealed objects, so a misspelt field throws), which load without the C library. It
 * records every MQI verb with a snapshot of its arguments so tests can assert the exact calls,
 * plays a queue manager just far enough (queues, MsgId generation, MQGET with
 * MQMO_MATCH_CORREL_ID and a wait interval), and can be told to fail any verb with a reason code.
 */

const require = createRequire(import.meta.url);

export function ibmmqStructsAvailable(): boolean {
  try {
    require.resolve("ibmmq/lib/mqidefs.js");
    return true;
  } catch {
    return false;
  }
}

type Ctor = new () => MqStruct;
const lib = (file: string, name: string) => (require(`ibmmq/lib/${file}.js`) as Record<string, Ctor>)[name]!;

export interface RecordedCall {
  readonly verb: string;
  readonly args: Record<string, unknown>;
}

interface FakeHObj {
  readonly kind: "hobj";
  readonly id: number;
  readonly queue: string;
  readonly options: number;
  closed: boolean;
}

interface PendingGet {
  readonly hObj: FakeHObj;
  readonly correlId: Buffer | undefined;
  readonly cb: MqGetCallback;
  readonly timer: NodeJS.Timeout;
}

export interface PutMessage {
  readonly queue: string;
  readonly msgId: Buffer;
  readonly replyToQ: string;
  readonly body: Buffer;
  readonly md: Record<string, unknown>;
  readonly properties: Record<string, string>;
}

export class FakeIbmMqModule implements IbmMqModule {
  readonly MQC = require("ibmmq/lib/mqidefs.js") as Record<string, number | string>;
  readonly MQCNO = lib("mqcno", "MQCNO");
  readonly MQCD = lib("mqcd", "MQCD");
  readonly MQCSP = lib("mqcsp", "MQCSP");
  readonly MQSCO = lib("mqsco", "MQSCO");
  readonly MQOD = lib("mqod", "MQOD");
  readonly MQMD = lib("mqmd", "MQMD");
  readonly MQPMO = lib("mqpmo", "MQPMO");
  readonly MQGMO = lib("mqgmo", "MQGMO");
  readonly MQCMHO = lib("mqmho", "MQCMHO");
  readonly MQDMHO = lib("mqmho", "MQDMHO");
  readonly MQSMPO = lib("mqmpo", "MQSMPO");
  readonly MQPD = lib("mqmpo", "MQPD");
  private readonly MQError = (
    require("ibmmq/lib/mqitypes.js") as { MQError: new (cc: number, rc: number, verb: string) => Error }
  ).MQError;

  readonly calls: RecordedCall[] = [];
  /** Messages waiting on each queue (replies not yet got). */
  readonly queues = new Map<string, { correlId: Buffer; body: Buffer }[]>();
  readonly puts: PutMessage[] = [];
  /** The "mainframe": called for every request put, after the put completes. */
  onRequest: ((msg: PutMessage, fake: FakeIbmMqModule) => void) | undefined;
  /** Queues that do not exist (MQRC_UNKNOWN_OBJECT_NAME on open). */
  readonly unknownQueues = new Set<string>();
  private readonly failures = new Map<string, number[]>();
  private readonly pendingGets = new Set<PendingGet>();
  private readonly msgProps = new Map<number, Record<string, string>>();
  private nextId = 1;
  connected = 0;

  /** The next `verb` call fails with this reason code (queue them for several calls). */
  failNext(verb: "Connx" | "Open" | "Put" | "Get" | "Close" | "Disc", reason: number): void {
    const list = this.failures.get(verb) ?? [];
    list.push(reason);
    this.failures.set(verb, list);
  }

  /** Completes every waiting MQGET with this reason code (e.g. 2009 connection broken). */
  breakGets(reason: number): void {
    for (const g of [...this.pendingGets]) {
      this.pendingGets.delete(g);
      clearTimeout(g.timer);
      g.cb(this.err(reason, "GET[async]"), g.hObj, null, null, null);
    }
  }

  /** The mainframe's reply: MQPUT to the reply queue with CorrelId = the request's MsgId. */
  reply(queue: string, correlId: Buffer, body: Buffer | string): void {
    const msg = {
      correlId: Buffer.from(correlId),
      body: typeof body === "string" ? Buffer.from(body, "latin1") : body,
    };
    const waiting = [...this.pendingGets].find(
      (g) => g.hObj.queue === queue && (g.correlId === undefined || g.correlId.equals(msg.correlId)),
    );
    if (waiting) this.deliver(waiting, msg);
    else this.queues.set(queue, [...(this.queues.get(queue) ?? []), msg]);
  }

  get activeGets(): number {
    return this.pendingGets.size;
  }

  callsOf(verb: string): Record<string, unknown>[] {
    return this.calls.filter((c) => c.verb === verb).map((c) => c.args);
  }

  Connx(qmgr: string, cno: MqStruct, cb: MqCallback<MqHConn>): void {
    const cd = cno.ClientConn as MqStruct | null;
    const csp = cno.SecurityParms as MqStruct | null;
    const sco = cno.SSLConfig as MqStruct | null;
    this.record("Connx", {
      qmgr,
      Options: cno.Options,
      ApplName: cno.ApplName,
      CCDTUrl: cno.CCDTUrl,
      ChannelName: cd?.ChannelName,
      ConnectionName: cd?.ConnectionName,
      SSLCipherSpec: cd?.SSLCipherSpec,
      UserId: csp?.UserId,
      Password: csp?.Password,
      KeyRepository: sco?.KeyRepository,
      CertificateLabel: sco?.CertificateLabel,
      structs: {
        cd: cd === null ? null : cd instanceof this.MQCD,
        csp: csp === null ? null : csp instanceof this.MQCSP,
        sco: sco === null ? null : sco instanceof this.MQSCO,
      },
    });
    const rc = this.failure("Connx");
    setImmediate(() => {
      if (rc) return cb(this.err(rc, "CONNX"), {} as MqHConn);
      this.connected++;
      cb(null, { kind: "hconn", id: this.nextId++ });
    });
  }

  Disc(hConn: MqHConn, cb: MqCallback): void {
    this.record("Disc", { hConn });
    this.connected--;
    setImmediate(() => cb(null, undefined));
  }

  Open(_hConn: MqHConn, od: MqStruct, options: number, cb: MqCallback<MqHObj>): void {
    const name = String(od.ObjectName);
    const dynamic = od.DynamicQName as string;
    this.record("Open", { ObjectName: name, DynamicQName: dynamic, ObjectType: od.ObjectType, options });
    const rc =
      this.failure("Open") ?? (this.unknownQueues.has(name) ? this.MQC.MQRC_UNKNOWN_OBJECT_NAME : undefined);
    let queue = name;
    if (!rc && name.includes("MODEL")) {
      // A model queue opens as a new temporary dynamic queue; MQOPEN writes its name back to the MQOD.
      queue = `${dynamic.replace("*", "")}${randomBytes(8).toString("hex").toUpperCase()}`;
      od.ObjectName = queue;
    }
    setImmediate(() => {
      if (rc) return cb(this.err(Number(rc), "OPEN"), {} as MqHObj);
      cb(null, { kind: "hobj", id: this.nextId++, queue, options, closed: false } satisfies FakeHObj);
    });
  }

  Close(hObj: MqHObj, options: number, cb: MqCallback): void {
    const h = hObj as FakeHObj;
    this.record("Close", { queue: h.queue, options });
    h.closed = true;
    const rc = this.failure("Close");
    setImmediate(() => cb(rc ? this.err(rc, "CLOSE") : null, undefined));
  }

  Put(hObj: MqHObj, md: MqStruct, pmo: MqStruct, body: Buffer, cb: MqCallback): void {
    const h = hObj as FakeHObj;
    const snapshot = {
      queue: h.queue,
      MsgType: md.MsgType,
      Format: md.Format,
      CodedCharSetId: md.CodedCharSetId,
      ReplyToQ: md.ReplyToQ,
      Report: md.Report,
      Expiry: md.Expiry,
      Persistence: md.Persistence,
      Priority: md.Priority,
      pmoOptions: pmo.Options,
      OriginalMsgHandle: pmo.OriginalMsgHandle,
      body: Buffer.from(body),
    };
    this.record("Put", snapshot);
    const rc = this.failure("Put");
    if (!rc) {
      // MQPMO_NEW_MSG_ID: the queue manager generates the MsgId and MQPUT writes it back to the MQMD.
      if ((Number(pmo.Options) & Number(this.MQC.MQPMO_NEW_MSG_ID)) !== 0) md.MsgId = randomBytes(24);
    }
    setImmediate(() => {
      if (rc) return cb(this.err(rc, "PUT"), undefined);
      cb(null, undefined);
      const handle = pmo.OriginalMsgHandle;
      const msg: PutMessage = {
        queue: h.queue,
        msgId: Buffer.from(md.MsgId as Buffer),
        replyToQ: String(md.ReplyToQ),
        body: snapshot.body,
        md: snapshot,
        properties: typeof handle === "number" ? { ...(this.msgProps.get(handle) ?? {}) } : {},
      };
      this.puts.push(msg);
      this.onRequest?.(msg, this);
    });
  }

  Get(hObj: MqHObj, md: MqStruct, gmo: MqStruct, cb: MqGetCallback): void {
    const h = hObj as FakeHObj;
    const matchCorrel = (Number(gmo.MatchOptions) & Number(this.MQC.MQMO_MATCH_CORREL_ID)) !== 0;
    const correlId = matchCorrel ? Buffer.from(md.CorrelId as Buffer) : undefined;
    this.record("Get", {
      queue: h.queue,
      CorrelId: correlId,
      MatchOptions: gmo.MatchOptions,
      Options: gmo.Options,
      WaitInterval: gmo.WaitInterval,
      CodedCharSetId: md.CodedCharSetId,
    });
    const rc = this.failure("Get");
    if (rc) {
      setImmediate(() => cb(this.err(rc, "GET[async]"), hObj, null, null, null));
      return;
    }
    const wait = Number(gmo.WaitInterval);
    const g: PendingGet = {
      hObj: h,
      correlId,
      cb,
      timer: setTimeout(() => {
        if (!this.pendingGets.delete(g)) return;
        cb(this.err(Number(this.MQC.MQRC_NO_MSG_AVAILABLE), "GET[async]"), hObj, null, null, null);
      }, wait),
    };
    g.timer.unref();
    this.pendingGets.add(g);
    const queued = this.queues.get(h.queue) ?? [];
    const idx = queued.findIndex((m) => correlId === undefined || m.correlId.equals(correlId));
    if (idx >= 0) {
      const [m] = queued.splice(idx, 1);
      setImmediate(() => this.deliver(g, m!));
    }
  }

  /** Recorded so a test can prove it is never used: GetSync with a wait blocks the event loop. */
  GetSync(): never {
    this.record("GetSync", {});
    throw new Error("GetSync must never be called by the connector");
  }

  GetDone(hObj: MqHObj, cb?: MqCallback): void {
    const h = hObj as FakeHObj;
    this.record("GetDone", { queue: h.queue, hObj: h.id });
    for (const g of [...this.pendingGets]) {
      if (g.hObj === h) {
        clearTimeout(g.timer);
        this.pendingGets.delete(g);
      }
    }
    if (cb) setImmediate(() => cb(null, undefined));
  }

  CrtMh(_hConn: MqHConn, cmho: MqStruct): unknown {
    const id = this.nextId++;
    this.record("CrtMh", { isCmho: cmho instanceof this.MQCMHO, handle: id });
    this.msgProps.set(id, {});
    return id;
  }

  SetMp(_hConn: MqHConn, hMsg: unknown, smpo: MqStruct, name: string, pd: MqStruct, value: string): void {
    this.record("SetMp", {
      hMsg,
      name,
      value,
      isSmpo: smpo instanceof this.MQSMPO,
      isPd: pd instanceof this.MQPD,
    });
    const props = this.msgProps.get(hMsg as number);
    if (props) props[name] = value;
  }

  DltMh(_hConn: MqHConn, hMsg: unknown, dmho: MqStruct): void {
    this.record("DltMh", { hMsg, isDmho: dmho instanceof this.MQDMHO });
  }

  private deliver(g: PendingGet, msg: { correlId: Buffer; body: Buffer }): void {
    if (!this.pendingGets.delete(g)) return;
    clearTimeout(g.timer);
    const md = new this.MQMD();
    md.CorrelId = msg.correlId;
    md.Format = this.MQC.MQFMT_STRING;
    g.cb(null, g.hObj, new this.MQGMO(), md, msg.body);
  }

  private failure(verb: string): number | undefined {
    return this.failures.get(verb)?.shift();
  }

  private err(rc: number, verb: string): Error & { mqrc: number; mqcc: number } {
    return new this.MQError(Number(this.MQC.MQCC_FAILED), rc, verb) as Error & { mqrc: number; mqcc: number };
  }

  private record(verb: string, args: Record<string, unknown>): void {
    this.calls.push({ verb, args });
  }
}
