import type { ConsumeMessage } from "amqplib";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { mqFactory } from "../../../src/connectors/mq/index.js";
import { createMqConnector, type MqConnector } from "../../../src/connectors/mq/connector.js";
import { mqConfigSchema } from "../../../src/connectors/mq/config.js";
import type { Identity } from "../../../src/core/index.js";
import { connectorContract, findTool, testContext, testIdentity } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { serviceUrl } from "../../helpers/services.js";
import { Responder, TcpProxy, sleep, uniqueQueue, waitFor } from "./amqp-helpers.js";
import { rejection } from "../../helpers/errors.js";

const url = serviceUrl("rabbitmq");
const deps = { baseDir: process.cwd(), logger: testLogger };

const orderReplySchema = {
  type: "object",
  properties: {
    orderId: { type: "string" },
    status: { type: "string", enum: ["OPEN", "SHIPPED", "CANCELLED"] },
    total: { type: "string", pattern: "^-?\\d+\\.\\d{2}$" },
  },
  required: ["orderId", "status"],
  additionalProperties: false,
};

function jsonTool(requestQueue: string, extra: Record<string, unknown> = {}) {
  return {
    name: "order_status",
    description: "Order status from the mainframe",
    requestQueue,
    format: { type: "json" },
    requestSchema: {
      type: "object",
      properties: { orderId: { type: "string" } },
      required: ["orderId"],
      additionalProperties: false,
    },
    replySchema: orderReplySchema,
    waitMs: 3_000,
    annotations: { readOnlyHint: true },
    ...extra,
  };
}

/** Answers {orderId, status: SHIPPED, total} to every JSON request. */
const echoJson = (msg: ConsumeMessage, r: Responder) => {
  const req = JSON.parse(msg.content.toString("utf8")) as { orderId: string };
  r.reply(msg, JSON.stringify({ orderId: req.orderId, status: "SHIPPED", total: "1234.50" }));
};

const opened: { close(): Promise<void> }[] = [];
async function track<T extends { close(): Promise<void> }>(p: Promise<T>): Promise<T> {
  const v = await p;
  opened.push(v);
  return v;
}

async function connector(
  name: string,
  tools: unknown[],
  extra: Record<string, unknown> = {},
  brokerUrl = url!,
): Promise<MqConnector> {
  const config = mqConfigSchema.parse({
    kind: "mq",
    name,
    transport: { type: "amqp", url: brokerUrl },
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    tools,
    ...extra,
  });
  return track(createMqConnector(config, deps));
}

function call(
  c: MqConnector,
  op: string,
  args: Record<string, unknown>,
  ctx: Partial<Parameters<typeof testContext>[0]> = {},
) {
  return c.invoke({ tool: findTool(c, `${c.name}__${op}`), arguments: args }, testContext(ctx));
}

describe.skipIf(!url)("mq connector over AMQP (real RabbitMQ)", () => {
  afterEach(async () => {
    while (opened.length > 0) await opened.pop()!.close();
  });

  it("JSON request/reply: correlationId, replyTo, expiry, confirms, traceparent", async () => {
    const q = uniqueQueue("json");
    const responder = await track(Responder.start(url!, q, echoJson));
    const c = await connector("orders", [jsonTool(q, { priority: 5, persistent: true })]);
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const result = await call(c, "order_status", { orderId: "A-1001" }, { traceparent, callId: "call-123" });
    expect(result.isError ?? false).toBe(false);
    expect(result.structuredContent).toEqual({ orderId: "A-1001", status: "SHIPPED", total: "1234.50" });
    const msg = responder.received[0]!;
    expect(JSON.parse(msg.content.toString())).toEqual({ orderId: "A-1001" });
    expect(msg.properties.replyTo).toMatch(/^amq\.gen-/);
    expect(msg.properties.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(msg.properties.contentType).toBe("application/json");
    expect(msg.properties.expiration).toBe("3000");
    expect(msg.properties.priority).toBe(5);
    expect(msg.properties.deliveryMode).toBe(2);
    expect(msg.properties.type).toBe("order_status");
    expect(msg.properties.headers).toMatchObject({ traceparent, "portcullis-call-id": "call-123" });
    expect(c.stats()).toMatchObject({ sent: 1, replied: 1, inFlight: 0 });
  });

  it("XML request/reply: escaped values, lists from the schema, numbers coerced, money stays text", async () => {
    const q = uniqueQueue("xml");
    let requestXml = "";
    await track(
      Responder.start(url!, q, (msg, r) => {
        requestXml = msg.content.toString("utf8");
        r.reply(
          msg,
          `<?xml version="1.0"?><OrderStatusReply><orderId>A&amp;B</orderId><status>OPEN</status><lines><line><sku>X1</sku><qty>2</qty><price>0010.50</price></line></lines></OrderStatusReply>`,
        );
      }),
    );
    const c = await connector("orders-xml", [
      {
        name: "order_status",
        description: "Order status (XML)",
        requestQueue: q,
        format: { type: "xml", requestRoot: "OrderStatusRequest", replyRoot: "OrderStatusReply" },
        requestSchema: {
          type: "object",
          properties: { orderId: { type: "string" }, note: { type: "string" } },
        },
        replySchema: {
          type: "object",
          properties: {
            orderId: { type: "string" },
            status: { type: "string" },
            lines: {
              type: "object",
              properties: {
                line: {
                  type: "array",
                  items: {
                    type: "object",
                    properties: {
                      sku: { type: "string" },
                      qty: { type: "integer" },
                      price: { type: "string" },
                    },
                  },
                },
              },
            },
          },
          required: ["orderId", "status"],
        },
      },
    ]);
    const result = await call(c, "order_status", { orderId: "A&B", note: "<urgent>" });
    expect(requestXml).toBe(
      `<?xml version="1.0" encoding="UTF-8"?><OrderStatusRequest><orderId>A&amp;B</orderId><note>&lt;urgent&gt;</note></OrderStatusRequest>`,
    );
    expect(result.structuredContent).toEqual({
      orderId: "A&amp;B",
      status: "OPEN",
      lines: { line: [{ sku: "X1", qty: 2, price: "0010.50" }] },
    });
  });

  it("fixed-width records: exact encode/decode with implied decimals and signs", async () => {
    const q = uniqueQueue("fixed");
    let requestRecord = "";
    await track(
      Responder.start(url!, q, (msg, r) => {
        requestRecord = msg.content.toString("latin1");
        //            orderId(10)  status(10)  total S9(7)V99 trailing-separate  qty
        r.reply(msg, Buffer.from("A-1001    SHIPPED   000123450-00042", "latin1"));
      }),
    );
    const c = await connector("mainframe", [
      {
        name: "order_status",
        description: "Order status (fixed-width)",
        requestQueue: q,
        format: {
          type: "fixed",
          encoding: "latin1",
          request: [
            { name: "txCode", length: 4, type: "alphanumeric", default: "OSTQ" },
            { name: "orderId", length: 10, type: "alphanumeric" },
            { name: "limit", length: 6, type: "numeric", decimals: 2, sign: "leading-separate" },
          ],
          reply: [
            { name: "orderId", length: 10, type: "alphanumeric" },
            { name: "status", length: 10, type: "alphanumeric" },
            { name: "total", length: 10, type: "numeric", decimals: 2, sign: "trailing-separate" },
            { name: "qty", length: 5, type: "numeric", jsonType: "integer" },
          ],
        },
        requestSchema: {
          type: "object",
          properties: { orderId: { type: "string", maxLength: 10 }, limit: { type: "string" } },
          required: ["orderId"],
        },
        replySchema: {
          type: "object",
          properties: {
            orderId: { type: "string" },
            status: { type: "string" },
            total: { type: "string" },
            qty: { type: "integer" },
          },
          required: ["orderId", "status", "total", "qty"],
        },
      },
    ]);
    const result = await call(c, "order_status", { orderId: "A-1001", limit: "-12.5" });
    expect(requestRecord).toBe("OSTQA-1001    -01250");
    expect(result.structuredContent).toEqual({
      orderId: "A-1001",
      status: "SHIPPED",
      total: "-1234.50",
      qty: 42,
    });

    const tooBig = await rejection(call(c, "order_status", { orderId: "A-1001", limit: "1000.00" }));
    expect(tooBig.code).toBe("INVALID_ARGUMENTS");
    expect(tooBig.message).toMatch(
      /field "limit": value 1000.00 does not fit 3 integer digits and 2 decimals/,
    );
  });

  it("no reply within the wait budget is UPSTREAM_TIMEOUT; the late reply is counted and dropped, not given to the next call", async () => {
    const q = uniqueQueue("late");
    const held: ConsumeMessage[] = [];
    const responder = await track(
      Responder.start(url!, q, (msg, r) => {
        const req = JSON.parse(msg.content.toString()) as { orderId: string };
        if (req.orderId === "SLOW") held.push(msg);
        else echoJson(msg, r);
      }),
    );
    const c = await connector("late", [jsonTool(q, { waitMs: 300 })]);
    const err = await rejection(call(c, "order_status", { orderId: "SLOW" }));
    expect(err.code).toBe("UPSTREAM_TIMEOUT");
    expect(err.message).toMatch(/no reply to order_status within 300 ms from queue portcullis-test-mq-late-/);
    expect(held).toHaveLength(1);

    responder.reply(held[0]!, JSON.stringify({ orderId: "SLOW", status: "OPEN" }));
    await waitFor(() => c.stats().lateDropped === 1, 3_000, "late reply counted");
    const next = await call(c, "order_status", { orderId: "FAST" });
    expect(next.structuredContent).toMatchObject({ orderId: "FAST", status: "SHIPPED" });
    expect(c.stats()).toMatchObject({ timedOut: 1, lateDropped: 1, replied: 1 });
  });

  it("pending tools answer a request id past the budget; get_reply returns the late reply once, to its own caller only", async () => {
    const q = uniqueQueue("pending");
    const held: ConsumeMessage[] = [];
    const responder = await track(Responder.start(url!, q, (msg) => void held.push(msg)));
    const c = await connector("slow", [jsonTool(q, { waitMs: 200, onTimeout: "pending" })], {
      lateReplies: { ttlMs: 5_000 },
    });
    expect(c.tools().map((t) => t.name)).toEqual(["slow__order_status", "slow__get_reply"]);

    const first = await call(c, "order_status", { orderId: "A-7" });
    expect(first.isError ?? false).toBe(false);
    const pending = first.structuredContent as { status: string; requestId: string; fetchWith: string };
    expect(pending).toMatchObject({ status: "pending", fetchWith: "slow__get_reply" });
    expect(held[0]!.properties.correlationId).toBe(pending.requestId);
    // Pending requests expire with the late-reply store, not with the short wait budget.
    expect(Number(held[0]!.properties.expiration)).toBeGreaterThanOrEqual(5_000);

    const notYet = await call(c, "get_reply", { requestId: pending.requestId });
    expect(notYet.structuredContent).toMatchObject({ status: "pending", requestId: pending.requestId });

    const intruder: Identity = { ...testIdentity, subject: "someone-else" };
    const stolen = await rejection(
      call(c, "get_reply", { requestId: pending.requestId }, { identity: intruder }),
    );
    expect(stolen.message).toMatch(/no pending request/);

    responder.reply(held[0]!, JSON.stringify({ orderId: "A-7", status: "OPEN" }));
    const fetched = await call(c, "get_reply", { requestId: pending.requestId, waitMs: 3_000 });
    expect(fetched.structuredContent).toEqual({ orderId: "A-7", status: "OPEN" });

    responder.reply(held[0]!, JSON.stringify({ orderId: "A-7", status: "OPEN" }));
    await waitFor(() => c.stats().duplicateDropped === 1, 3_000, "duplicate counted");
    const again = await rejection(call(c, "get_reply", { requestId: pending.requestId }));
    expect(again.code).toBe("INVALID_ARGUMENTS");
  });

  it("200 concurrent calls each get their own reply when the replies come back in reverse order", async () => {
    const q = uniqueQueue("many");
    const batch: ConsumeMessage[] = [];
    await track(
      Responder.start(url!, q, (msg, r) => {
        batch.push(msg);
        if (batch.length === 200) for (const m of [...batch].reverse()) echoJson(m, r);
      }),
    );
    const c = await connector("many", [jsonTool(q, { waitMs: 15_000 })], { maxInFlight: 200 });
    const ids = Array.from({ length: 200 }, (_, i) => `ORD-${i}`);
    const results = await Promise.all(
      ids.map((orderId) => call(c, "order_status", { orderId }, { timeoutMs: 20_000 })),
    );
    expect(results.map((r) => (r.structuredContent as { orderId: string }).orderId)).toEqual(ids);
    expect(c.stats()).toMatchObject({ replied: 200, inFlight: 0, unknownDropped: 0, lateDropped: 0 });
  });

  it("refuses calls beyond maxInFlight with BUSY", async () => {
    const q = uniqueQueue("busy");
    const held: ConsumeMessage[] = [];
    const responder = await track(Responder.start(url!, q, (msg) => void held.push(msg)));
    const c = await connector("busy", [jsonTool(q)], { maxInFlight: 2 });
    const a = call(c, "order_status", { orderId: "1" });
    const b = call(c, "order_status", { orderId: "2" });
    const busy = await rejection(call(c, "order_status", { orderId: "3" }));
    expect(busy.code).toBe("BUSY");
    expect(busy.message).toMatch(/2 requests already wait for replies \(maxInFlight 2\)/);
    await waitFor(() => held.length === 2, 3_000, "two requests at the responder");
    for (const m of held) echoJson(m, responder);
    await expect(a).resolves.toMatchObject({ structuredContent: { orderId: "1" } });
    await expect(b).resolves.toMatchObject({ structuredContent: { orderId: "2" } });
    expect(c.stats().busyRefused).toBe(1);
  });

  it("a reply that violates its schema is an isError saying what differed; malformed replies are UPSTREAM_BAD_RESPONSE", async () => {
    const q = uniqueQueue("schema");
    await track(
      Responder.start(url!, q, (msg, r) => {
        const { orderId } = JSON.parse(msg.content.toString()) as { orderId: string };
        if (orderId === "BAD")
          r.reply(msg, JSON.stringify({ orderId: "BAD", status: "LOST", total: 12.5, extra: 1 }));
        else if (orderId === "GARBAGE") r.reply(msg, "<<not json>>");
        else r.reply(msg, JSON.stringify([1, 2]));
      }),
    );
    const c = await connector("schema", [jsonTool(q)]);
    const bad = await call(c, "order_status", { orderId: "BAD" });
    expect(bad.isError).toBe(true);
    expect(bad.text).toMatch(/reply to order_status does not match its reply schema/);
    expect(bad.text).toContain('/status must be one of "OPEN", "SHIPPED", "CANCELLED"');
    expect(bad.text).toContain("/total must be string");
    expect(bad.text).toContain("/extra is not allowed by the schema");
    expect((bad.structuredContent as { error: { violations: unknown[] } }).error.violations).toHaveLength(3);

    const garbage = await rejection(call(c, "order_status", { orderId: "GARBAGE" }));
    expect(garbage.code).toBe("UPSTREAM_BAD_RESPONSE");
    expect(garbage.message).toMatch(/malformed reply: not valid UTF-8 JSON/);
    const array = await rejection(call(c, "order_status", { orderId: "ARRAY" }));
    expect(array.message).toMatch(/malformed reply: the JSON is not an object/);
  });

  it("an oversized reply is refused", async () => {
    const q = uniqueQueue("big");
    await track(
      Responder.start(url!, q, (msg, r) =>
        r.reply(msg, JSON.stringify({ orderId: "x".repeat(500), status: "OPEN" })),
      ),
    );
    const c = await connector("big", [jsonTool(q)], { maxReplyBytes: 100 });
    const err = await rejection(call(c, "order_status", { orderId: "1" }));
    expect(err.code).toBe("UPSTREAM_BAD_RESPONSE");
    expect(err.message).toMatch(/is 5\d\d bytes, over maxReplyBytes 100/);
  });

  it("requests expire on the queue when nobody takes them in time", async () => {
    const q = uniqueQueue("expiry");
    const responder = await track(Responder.start(url!, q, undefined));
    const c = await connector("expiry", [jsonTool(q, { waitMs: 300, expiryMs: 200 })]);
    const err = await rejection(call(c, "order_status", { orderId: "stale" }));
    expect(err.code).toBe("UPSTREAM_TIMEOUT");
    await sleep(100);
    await responder.consume(echoJson);
    await sleep(300);
    expect(responder.received).toHaveLength(0);
    const check = await responder.channel.checkQueue(q);
    expect(check.messageCount).toBe(0);
  });

  it("a request to a queue that does not exist fails at once, naming it", async () => {
    const c = await connector("noqueue", [jsonTool(uniqueQueue("missing"))]);
    const err = await rejection(call(c, "order_status", { orderId: "1" }));
    expect(err.code).toBe("UPSTREAM_ERROR");
    expect(err.message).toMatch(/no queue named "portcullis-test-mq-missing-[0-9a-f]{8}" on the broker/);
  });

  it("counts and drops replies for unknown correlation ids and duplicates", async () => {
    const q = uniqueQueue("unknown");
    await track(
      Responder.start(url!, q, (msg, r) => {
        r.reply(msg, JSON.stringify({ orderId: "X", status: "OPEN" }), "not-a-request-of-ours");
        echoJson(msg, r);
        echoJson(msg, r);
      }),
    );
    const c = await connector("unknown", [jsonTool(q)]);
    const result = await call(c, "order_status", { orderId: "X" });
    expect(result.structuredContent).toMatchObject({ orderId: "X", status: "SHIPPED" });
    await waitFor(
      () => c.stats().duplicateDropped === 1 && c.stats().unknownDropped === 1,
      3_000,
      "drops counted",
    );
  });

  it("recovers when the broker connection is cut mid-run: waiting calls fail clearly, later calls succeed", async () => {
    const proxy = await track(TcpProxy.start(new URL(url!)));
    const q = uniqueQueue("cut");
    const held: ConsumeMessage[] = [];
    await track(
      Responder.start(url!, q, (msg, r) => {
        const { orderId } = JSON.parse(msg.content.toString()) as { orderId: string };
        if (orderId === "HOLD") held.push(msg);
        else echoJson(msg, r);
      }),
    );
    const c = await connector("cut", [jsonTool(q, { waitMs: 5_000 })], {}, proxy.url(url!));
    await expect(call(c, "order_status", { orderId: "before" })).resolves.toMatchObject({
      structuredContent: { orderId: "before" },
    });

    const waiting = call(c, "order_status", { orderId: "HOLD" });
    await waitFor(() => held.length === 1, 3_000, "held request");
    proxy.cut();
    const err = await rejection(waiting);
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(err.message).toMatch(
      /connection lost while waiting for the reply to order_status; the request \(id [0-9a-f-]{36}\) may have been processed/,
    );

    await waitFor(() => c.stats().reconnects >= 1, 10_000, "reconnect");
    expect((await c.health()).ok).toBe(true);
    const after = await call(c, "order_status", { orderId: "after" });
    expect(after.structuredContent).toMatchObject({ orderId: "after", status: "SHIPPED" });
  });

  it("a call made while reconnecting waits for the connection within its budget", async () => {
    const proxy = await track(TcpProxy.start(new URL(url!)));
    const q = uniqueQueue("reconnecting");
    await track(Responder.start(url!, q, echoJson));
    const c = await connector(
      "reconnecting",
      [jsonTool(q, { waitMs: 8_000 })],
      { reconnect: { initialDelayMs: 300, maxDelayMs: 300 } },
      proxy.url(url!),
    );
    proxy.cut();
    await waitFor(() => c.stats().state === "down", 3_000, "down");
    expect((await c.health()).ok).toBe(false);
    const result = await call(c, "order_status", { orderId: "during" }, { timeoutMs: 10_000 });
    expect(result.structuredContent).toMatchObject({ orderId: "during" });
  });

  it("close answers waiting calls with SHUTTING_DOWN", async () => {
    const q = uniqueQueue("close");
    await track(Responder.start(url!, q, () => undefined));
    const config = mqConfigSchema.parse({
      kind: "mq",
      name: "closing",
      transport: { type: "amqp", url },
      tools: [jsonTool(q)],
    });
    const c = await createMqConnector(config, deps);
    const waiting = rejection(call(c, "order_status", { orderId: "1" }));
    await waitFor(() => c.stats().sent === 1, 3_000, "sent");
    await c.close();
    const err = await waiting;
    expect(err.code).toBe("SHUTTING_DOWN");
    expect(err.message).toMatch(
      /shutting down; order_status \(request id .*\) got no reply and may have been processed/,
    );
    expect((await rejection(call(c, "order_status", { orderId: "2" }))).code).toBe("SHUTTING_DOWN");
  });

  it("fails to start with a clear message, without credentials, when the broker is unreachable", async () => {
    const proxy = await TcpProxy.start(new URL(url!));
    const deadUrl = proxy.url("amqp://admin:s3cret@127.0.0.1:5672");
    await proxy.close();
    const config = mqFactory.configSchema.parse({
      kind: "mq",
      name: "down",
      transport: { type: "amqp", url: deadUrl, connectTimeoutMs: 2_000 },
      tools: [jsonTool("unused")],
    });
    const err = await rejection(mqFactory.create(config, deps));
    expect(err.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(err.message).toMatch(
      /connector "down" \(mq, amqp\): cannot connect to the AMQP broker at amqp:\/\/\*\*\*@127\.0\.0\.1:\d+/,
    );
    expect(err.message).not.toContain("s3cret");
  });
});

describe.skipIf(!url)("mq connector contract (amqp)", () => {
  let responder: Responder | undefined;
  afterAll(async () => {
    await responder?.close();
  });
  connectorContract(
    "mq",
    async () => {
      const q = uniqueQueue("contract");
      responder = await Responder.start(url!, q, echoJson);
      const config = mqFactory.configSchema.parse({
        kind: "mq",
        name: "contract",
        transport: { type: "amqp", url },
        tools: [jsonTool(q)],
      });
      const connector = await mqFactory.create(config, deps);
      return { connector, okCall: { tool: "contract__order_status", arguments: { orderId: "C-1" } } };
    },
    async () => {
      await responder?.close();
      responder = undefined;
    },
  );
});
