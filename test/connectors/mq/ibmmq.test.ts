import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { mqConfigSchema } from "../../../src/connectors/mq/config.js";
import { createMqConnector, type MqConnector } from "../../../src/connectors/mq/connector.js";
import { loadIbmMq } from "../../../src/connectors/mq/ibmmq-api.js";
import { mqFactory } from "../../../src/connectors/mq/index.js";
import type { GatewayError } from "../../../src/core/index.js";
import { findTool, testContext } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { sleep, waitFor } from "./amqp-helpers.js";
import { FakeIbmMqModule, ibmmqStructsAvailable, type PutMessage } from "./fake-ibmmq.js";
import { rejection } from "../../helpers/errors.js";

const deps = { baseDir: process.cwd(), logger: testLogger };

const transport = {
  type: "ibmmq",
  queueManager: "QM1",
  channel: "DEV.APP.SVRCONN",
  connName: "mq.example.com(1414)",
  user: "app",
  password: "passw0rd",
  tls: {
    cipherSpec: "ANY_TLS13_OR_HIGHER",
    keyRepository: "/var/mqm/ssl/key",
    certificateLabel: "portcullis",
  },
};

const fixedTool = {
  name: "order_status",
  description: "Order status from CICS",
  requestQueue: "ORDERS.STATUS.REQUEST",
  format: {
    type: "fixed",
    encoding: "latin1",
    request: [
      { name: "tx", length: 4, type: "alphanumeric", default: "OSTQ" },
      { name: "orderId", length: 8, type: "alphanumeric" },
    ],
    reply: [
      { name: "orderId", length: 8, type: "alphanumeric" },
      { name: "status", length: 8, type: "alphanumeric" },
      { name: "total", length: 8, type: "numeric", decimals: 2, sign: "trailing-overpunch" },
    ],
  },
  requestSchema: { type: "object", properties: { orderId: { type: "string" } }, required: ["orderId"] },
  replySchema: {
    type: "object",
    properties: { orderId: { type: "string" }, status: { type: "string" }, total: { type: "string" } },
    required: ["orderId", "status", "total"],
  },
  waitMs: 1_500,
  expiryMs: 2_000,
  persistent: true,
  priority: 4,
};

/** The mainframe program: answers every request put with a fixed-width reply record. */
function answerAll(msg: PutMessage, fake: FakeIbmMqModule): void {
  const orderId = msg.body.toString("latin1").slice(4, 12);
  fake.reply(msg.replyToQ, msg.msgId, `${orderId}SHIPPED 0012345N`);
}

const opened: MqConnector[] = [];
async function start(
  fake: FakeIbmMqModule,
  extra: Record<string, unknown> = {},
  tools: unknown[] = [fixedTool],
) {
  const config = mqConfigSchema.parse({
    kind: "mq",
    name: "mainframe",
    transport,
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    tools,
    ...extra,
  });
  const c = await createMqConnector(config, deps, { ibmmqLoader: () => Promise.resolve(fake) });
  opened.push(c);
  return c;
}

function call(
  c: MqConnector,
  args: Record<string, unknown>,
  ctx: Parameters<typeof testContext>[0] = {},
  op = "order_status",
) {
  return c.invoke({ tool: findTool(c, `mainframe__${op}`), arguments: args }, testContext(ctx));
}

describe("ibmmq: the real binding cannot load here", () => {
  let realLoads = false;
  beforeAll(async () => {
    realLoads = await loadIbmMq().then(
      () => true,
      () => false,
    );
  });

  it("fails the connector start with what to install, and nothing else breaks", async (ctx) => {
    if (realLoads) ctx.skip();
    const config = mqFactory.configSchema.parse({
      kind: "mq",
      name: "mainframe",
      transport,
      tools: [fixedTool],
    });
    const err = await rejection(mqFactory.create(config, deps));
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(err.message).toMatch(
      /^connector "mainframe" \(mq, ibmmq\): IBM MQ transport unavailable: the IBM MQ client library cannot be loaded/,
    );
    expect(err.message).toMatch(/install the IBM MQ redistributable client/);
    expect(err.message).toMatch(/MQ_INSTALLATION_PATH/);
    expect(err.message).toMatch(/setmqenv/);
    expect(err.message).not.toContain("passw0rd");
  });

  it("says to install the npm package when `ibmmq` itself is missing", async () => {
    const missing = Object.assign(new Error("Cannot find package 'ibmmq' imported from x"), {
      code: "ERR_MODULE_NOT_FOUND",
    });
    const config = mqConfigSchema.parse({ kind: "mq", name: "mainframe", transport, tools: [fixedTool] });
    const err = await rejection(
      createMqConnector(config, deps, { ibmmqLoader: () => Promise.reject(missing) }),
    );
    expect(err.message).toMatch(/the npm package `ibmmq` is not installed; .*npm install ibmmq/);
  });
});

describe.skipIf(!ibmmqStructsAvailable())(
  "ibmmq transport against FakeIbmMqModule (test double asserting MQI calls)",
  () => {
    afterEach(async () => {
      while (opened.length > 0) await opened.pop()!.close();
    });

    it("MQCONNX: client binding, channel, connName, MQCSP user/password, TLS cipher and key repository, no client auto-reconnect", async () => {
      const fake = new FakeIbmMqModule();
      await start(fake);
      const C = fake.MQC;
      expect(fake.callsOf("Connx")).toEqual([
        {
          qmgr: "QM1",
          Options: Number(C.MQCNO_CLIENT_BINDING) | Number(C.MQCNO_RECONNECT_DISABLED),
          ApplName: "portcullis",
          CCDTUrl: null,
          ChannelName: "DEV.APP.SVRCONN",
          ConnectionName: "mq.example.com(1414)",
          SSLCipherSpec: "ANY_TLS13_OR_HIGHER",
          UserId: "app",
          Password: "passw0rd",
          KeyRepository: "/var/mqm/ssl/key",
          CertificateLabel: "portcullis",
          structs: { cd: true, csp: true, sco: true },
        },
      ]);
    });

    it("MQCONNX with a CCDT instead of a channel definition", async () => {
      const fake = new FakeIbmMqModule();
      const config = mqConfigSchema.parse({
        kind: "mq",
        name: "mainframe",
        transport: { type: "ibmmq", queueManager: "", ccdtUrl: "file:///etc/mq/ccdt.json" },
        tools: [fixedTool],
      });
      opened.push(await createMqConnector(config, deps, { ibmmqLoader: () => Promise.resolve(fake) }));
      expect(fake.callsOf("Connx")[0]).toMatchObject({
        qmgr: "",
        CCDTUrl: "file:///etc/mq/ccdt.json",
        ChannelName: undefined,
        UserId: undefined,
        KeyRepository: undefined,
      });
    });

    it("MQOPEN: the request queue for output, a temporary dynamic reply queue from the model queue", async () => {
      const fake = new FakeIbmMqModule();
      await start(fake);
      const C = fake.MQC;
      const opens = fake.callsOf("Open");
      expect(opens).toEqual([
        {
          ObjectName: "ORDERS.STATUS.REQUEST",
          DynamicQName: "AMQ.*",
          ObjectType: C.MQOT_Q,
          options: Number(C.MQOO_OUTPUT) | Number(C.MQOO_FAIL_IF_QUIESCING),
        },
        {
          ObjectName: "SYSTEM.DEFAULT.MODEL.QUEUE",
          DynamicQName: "PORTCULLIS.*",
          ObjectType: C.MQOT_Q,
          options: Number(C.MQOO_INPUT_SHARED) | Number(C.MQOO_FAIL_IF_QUIESCING),
        },
      ]);
    });

    it("MQPUT: MQMT_REQUEST, ReplyToQ, new MsgId, expiry, persistence, priority, code page, traceparent property", async () => {
      const fake = new FakeIbmMqModule();
      fake.onRequest = answerAll;
      const c = await start(fake);
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const result = await call(c, { orderId: "A-1001" }, { traceparent });
      expect(result.structuredContent).toEqual({ orderId: "A-1001", status: "SHIPPED", total: "-1234.55" });

      const C = fake.MQC;
      const put = fake.callsOf("Put")[0]!;
      const temporary = fake.puts[0]!.replyToQ;
      expect(temporary).toMatch(/^PORTCULLIS\.[0-9A-F]{16}$/);
      expect(put).toEqual({
        queue: "ORDERS.STATUS.REQUEST",
        MsgType: C.MQMT_REQUEST,
        Format: C.MQFMT_STRING,
        CodedCharSetId: 819,
        ReplyToQ: temporary,
        Report: C.MQRO_PASS_DISCARD_AND_EXPIRY,
        Expiry: 20, // tenths of a second
        Persistence: C.MQPER_PERSISTENT,
        Priority: 4,
        pmoOptions:
          Number(C.MQPMO_NO_SYNCPOINT) | Number(C.MQPMO_NEW_MSG_ID) | Number(C.MQPMO_FAIL_IF_QUIESCING),
        OriginalMsgHandle: expect.any(Number),
        body: Buffer.from("OSTQA-1001  ", "latin1"),
      });
      expect(fake.callsOf("SetMp")).toEqual([
        { hMsg: put.OriginalMsgHandle, name: "traceparent", value: traceparent, isSmpo: true, isPd: true },
      ]);
      expect(fake.callsOf("DltMh")).toEqual([{ hMsg: put.OriginalMsgHandle, isDmho: true }]);
      expect(fake.puts[0]!.properties).toEqual({ traceparent });
    });

    it("MQGET: asynchronous, MQMO_MATCH_CORREL_ID on the request's MsgId, wait interval = budget, MQGMO_CONVERT; never GetSync", async () => {
      const fake = new FakeIbmMqModule();
      fake.onRequest = answerAll;
      const c = await start(fake);
      await call(c, { orderId: "A-1" }, { timeoutMs: 5_000 });
      const C = fake.MQC;
      const [get] = fake.callsOf("Get");
      expect(get).toEqual({
        queue: fake.puts[0]!.replyToQ,
        CorrelId: fake.puts[0]!.msgId,
        MatchOptions: C.MQMO_MATCH_CORREL_ID,
        Options:
          Number(C.MQGMO_WAIT) |
          Number(C.MQGMO_NO_SYNCPOINT) |
          Number(C.MQGMO_CONVERT) |
          Number(C.MQGMO_FAIL_IF_QUIESCING),
        WaitInterval: expect.any(Number),
        CodedCharSetId: 819,
      });
      expect(get!.WaitInterval as number).toBeGreaterThan(1_000);
      expect(get!.WaitInterval as number).toBeLessThanOrEqual(1_500);
      await waitFor(() => fake.callsOf("GetDone").length === 1, 1_000, "GetDone after the reply");
      expect(fake.callsOf("GetSync")).toEqual([]);
    });

    it("a fixed reply queue is opened for input and named as ReplyToQ", async () => {
      const fake = new FakeIbmMqModule();
      fake.onRequest = answerAll;
      const c = await start(fake, {}, [{ ...fixedTool, replyQueue: "ORDERS.STATUS.REPLY" }]);
      await call(c, { orderId: "B-2" });
      expect(fake.callsOf("Open").map((o) => o.ObjectName)).toEqual([
        "ORDERS.STATUS.REQUEST",
        "ORDERS.STATUS.REPLY",
      ]);
      expect(fake.puts[0]!.replyToQ).toBe("ORDERS.STATUS.REPLY");
      expect(fake.callsOf("Get")[0]!.queue).toBe("ORDERS.STATUS.REPLY");
    });

    it("concurrent requests each wait on their own handle and get their own reply, answered in reverse order", async () => {
      const fake = new FakeIbmMqModule();
      const held: PutMessage[] = [];
      fake.onRequest = (msg) => {
        held.push(msg);
        if (held.length === 5) for (const m of [...held].reverse()) answerAll(m, fake);
      };
      const c = await start(fake);
      const ids = ["O-1", "O-2", "O-3", "O-4", "O-5"];
      const results = await Promise.all(ids.map((orderId) => call(c, { orderId })));
      expect(results.map((r) => (r.structuredContent as { orderId: string }).orderId)).toEqual(ids);
      const gets = fake.callsOf("Get");
      expect(new Set(gets.map((g) => (g.CorrelId as Buffer).toString("hex"))).size).toBe(5);
      // Handles go back to the pool: a later call reuses one instead of opening another.
      await waitFor(() => fake.callsOf("GetDone").length === 5, 1_000, "all GetDone");
      const opens = fake.callsOf("Open").length;
      fake.onRequest = answerAll;
      await call(c, { orderId: "O-6" });
      expect(fake.callsOf("Open").length).toBe(opens);
    });

    it("2033 (no message in the wait interval) is UPSTREAM_TIMEOUT; the handle is released", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake, {}, [{ ...fixedTool, waitMs: 150 }]);
      const err = await rejection(call(c, { orderId: "SLOW" }));
      expect(err.code).toBe("UPSTREAM_TIMEOUT");
      expect(err.message).toMatch(/no reply to order_status within 150 ms from queue ORDERS.STATUS.REQUEST/);
      await waitFor(() => fake.callsOf("GetDone").length === 1, 1_000, "GetDone");
      expect(fake.activeGets).toBe(0);
    });

    it("a late reply after the budget stays unconsumed for the caller that gave up; pending tools fetch it later", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake, { lateReplies: { ttlMs: 5_000 } }, [
        { ...fixedTool, waitMs: 100, onTimeout: "pending", expiryMs: undefined },
      ]);
      const first = await call(c, { orderId: "P-1" });
      const { requestId } = first.structuredContent as { requestId: string };
      expect(first.structuredContent).toMatchObject({ status: "pending", fetchWith: "mainframe__get_reply" });
      // The MQGET keeps listening for the late-reply TTL, and the request expires with it.
      expect(fake.callsOf("Get")[0]!.WaitInterval as number).toBeGreaterThan(5_000);
      expect(fake.callsOf("Put")[0]!.Expiry).toBe(51);
      answerAll(fake.puts[0]!, fake);
      const fetched = await call(c, { requestId, waitMs: 2_000 }, {}, "get_reply");
      expect(fetched.structuredContent).toEqual({ orderId: "P-1", status: "SHIPPED", total: "-1234.55" });
    });

    it("2009 on a waiting MQGET: the call fails as connection lost, the connector reconnects and works again", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake);
      const waiting = rejection(call(c, { orderId: "X" }));
      await waitFor(() => fake.activeGets === 1, 1_000, "get registered");
      fake.breakGets(Number(fake.MQC.MQRC_CONNECTION_BROKEN));
      const err = await waiting;
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(/connection lost while waiting for the reply to order_status/);
      expect((err.cause as GatewayError).message).toMatch(
        /MQGET on .* failed: connection to the queue manager broken \(MQRC_CONNECTION_BROKEN\) \[2009\]/,
      );
      await waitFor(() => c.stats().reconnects === 1, 2_000, "reconnect");
      expect(fake.callsOf("Connx")).toHaveLength(2);
      fake.onRequest = answerAll;
      await expect(call(c, { orderId: "Y" })).resolves.toMatchObject({ structuredContent: { orderId: "Y" } });
    });

    it("2059 while reconnecting: retries with backoff until the queue manager is back", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake);
      fake.failNext("Put", Number(fake.MQC.MQRC_Q_MGR_NOT_AVAILABLE));
      fake.failNext("Connx", Number(fake.MQC.MQRC_Q_MGR_NOT_AVAILABLE));
      fake.failNext("Connx", Number(fake.MQC.MQRC_HOST_NOT_AVAILABLE));
      const err = await rejection(call(c, { orderId: "Z" }));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(
        /MQPUT on queue ORDERS.STATUS.REQUEST failed: queue manager not available \(MQRC_Q_MGR_NOT_AVAILABLE\) \[2059\]/,
      );
      await waitFor(() => c.stats().reconnects === 1, 3_000, "reconnect");
      expect(fake.callsOf("Connx")).toHaveLength(4);
    });

    it("2053 queue full fails the call without dropping the connection", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake);
      fake.failNext("Put", Number(fake.MQC.MQRC_Q_FULL));
      const err = await rejection(call(c, { orderId: "F" }));
      expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
      expect(err.message).toMatch(/queue full \(MQRC_Q_FULL\).*\[2053\]/);
      expect(c.stats().state).toBe("up");
      expect(fake.callsOf("Connx")).toHaveLength(1);
    });

    it("2119 (reply not convertible) is UPSTREAM_BAD_RESPONSE", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake);
      fake.failNext("Get", Number(fake.MQC.MQRC_NOT_CONVERTED));
      const err = await rejection(call(c, { orderId: "C" }));
      expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
      expect(err.message).toMatch(
        /could not be converted to the requested code page \(MQRC_NOT_CONVERTED\) \[2119\]/,
      );
    });

    it("2035 at connect: the connector does not start, and says why", async () => {
      const fake = new FakeIbmMqModule();
      fake.failNext("Connx", Number(fake.MQC.MQRC_NOT_AUTHORIZED));
      const err = await rejection(start(fake));
      expect(err.code).toBe("UPSTREAM_ERROR");
      expect(err.message).toBe(
        `connector "mainframe" (mq, ibmmq): MQCONNX on queue manager "QM1" failed: not authorised (MQRC_NOT_AUTHORIZED): check the user, password and the channel's CHLAUTH/CONNAUTH rules [2035]`,
      );
      expect(err.message).not.toContain("passw0rd");
    });

    it("2085 at open: names the unknown queue, and disconnects", async () => {
      const fake = new FakeIbmMqModule();
      fake.unknownQueues.add("ORDERS.STATUS.REQUEST");
      const err = await rejection(start(fake));
      expect(err.message).toMatch(
        /MQOPEN on queue ORDERS.STATUS.REQUEST failed: unknown queue \(MQRC_UNKNOWN_OBJECT_NAME\) \[2085\]/,
      );
      expect(fake.callsOf("Disc")).toHaveLength(1);
      expect(fake.connected).toBe(0);
    });

    it("close answers waiting calls, stops gets, deletes the temporary queue and disconnects", async () => {
      const fake = new FakeIbmMqModule();
      const c = await start(fake);
      const waiting = rejection(call(c, { orderId: "W" }));
      await waitFor(() => fake.activeGets === 1, 1_000, "get registered");
      await c.close();
      expect((await waiting).code).toBe("SHUTTING_DOWN");
      const closes = fake.callsOf("Close");
      expect(closes).toContainEqual({ queue: fake.puts[0]!.replyToQ, options: fake.MQC.MQCO_DELETE_PURGE });
      expect(closes).toContainEqual({ queue: "ORDERS.STATUS.REQUEST", options: 0 });
      expect(fake.callsOf("Disc")).toHaveLength(1);
      await sleep(10);
    });
  },
);
