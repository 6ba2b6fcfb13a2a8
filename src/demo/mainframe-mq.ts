import { connect, type ChannelModel, type ConsumeMessage } from "amqplib";
import type { Logger } from "pino";

/**
 * Demo "mainframe": an order-status program answering fixed-width records over AMQP, the way a
 * CICS transaction behind an MQ bridge does. It reads `OSTQ` + order id (10), and answers
 * orderId(10) status(10) statusDate(8) carrier(10) total(S9(8)V99, trailing sign) currency(3)
 * lineCount(3) on the request's replyTo with its correlationId. Matches connectors/mainframe.json.
 *
 * Order A-1009 answers after 8 s, to show the pending/get_reply pattern.
 */

export const REQUEST_QUEUE = "portcullis.demo.mainframe.order-status";
const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672";
const SLOW_ORDER = "A-1009";
const SLOW_DELAY_MS = 8_000;

interface Order {
  status: string;
  statusDate: string;
  carrier: string;
  /** Cents, as an integer: money never passes through a float here either. */
  totalCents: bigint;
  currency: string;
  lines: number;
}

const ORDERS: Record<string, Order> = {
  "A-1001": {
    status: "SHIPPED",
    statusDate: "20250301",
    carrier: "DHL",
    totalCents: 123450n,
    currency: "EUR",
    lines: 3,
  },
  "A-1002": {
    status: "OPEN",
    statusDate: "20250304",
    carrier: "",
    totalCents: 9999n,
    currency: "EUR",
    lines: 1,
  },
  "A-1003": {
    status: "DELIVERED",
    statusDate: "20250220",
    carrier: "UPS",
    totalCents: 4500000n,
    currency: "USD",
    lines: 12,
  },
  "A-1004": {
    status: "CANCELLED",
    statusDate: "20250215",
    carrier: "",
    totalCents: -2500n,
    currency: "EUR",
    lines: 2,
  },
  "A-1005": {
    status: "PICKING",
    statusDate: "20250305",
    carrier: "",
    totalCents: 78990n,
    currency: "GBP",
    lines: 5,
  },
  [SLOW_ORDER]: {
    status: "SHIPPED",
    statusDate: "20250306",
    carrier: "FEDEX",
    totalCents: 31415n,
    currency: "USD",
    lines: 4,
  },
};

const alpha = (value: string, length: number) => value.slice(0, length).padEnd(length, " ");

function money(cents: bigint): string {
  const negative = cents < 0n;
  const digits = (negative ? -cents : cents).toString().padStart(10, "0");
  return `${digits}${negative ? "-" : "+"}`;
}

export function replyRecord(orderId: string): string {
  const o = ORDERS[orderId];
  if (!o)
    return `${alpha(orderId, 10)}${alpha("NOTFOUND", 10)}${alpha("", 8)}${alpha("", 10)}${money(0n)}${alpha("", 3)}000`;
  return [
    alpha(orderId, 10),
    alpha(o.status, 10),
    alpha(o.statusDate, 8),
    alpha(o.carrier, 10),
    money(o.totalCents),
    alpha(o.currency, 3),
    String(o.lines).padStart(3, "0"),
  ].join("");
}

function redact(url: string): string {
  return url.replace(/(amqps?:\/\/)[^@/\s]*@/i, "$1***@");
}

export async function start(opts: { repoRoot: string; logger: Logger }): Promise<{ close(): Promise<void> }> {
  const url = process.env.PORTCULLIS_DEMO_AMQP_URL || DEFAULT_URL;
  const log = opts.logger.child({ demo: "mainframe-mq" });
  let model: ChannelModel;
  try {
    model = await connect(url, { timeout: 2_000 });
  } catch (err) {
    log.warn(
      { err: err instanceof Error ? err.message : String(err) },
      `demo mainframe (MQ) not started: no RabbitMQ at ${redact(url)}; the "mainframe" connector is left out. To enable it, start RabbitMQ there or set PORTCULLIS_DEMO_AMQP_URL`,
    );
    return { close: async () => undefined };
  }
  model.on("error", (err: unknown) =>
    log.warn({ err: err instanceof Error ? err.message : String(err) }, "demo mainframe connection error"),
  );
  const channel = await model.createChannel();
  await channel.assertQueue(REQUEST_QUEUE, { durable: false, autoDelete: false });
  await channel.prefetch(20);
  const timers = new Set<NodeJS.Timeout>();
  const answer = (msg: ConsumeMessage) => {
    const replyTo: unknown = msg.properties.replyTo;
    const correlationId: unknown = msg.properties.correlationId;
    const record = msg.content.toString("latin1");
    channel.ack(msg);
    if (typeof replyTo !== "string" || replyTo === "") return;
    if (record.length !== 14 || !record.startsWith("OSTQ")) {
      log.warn({ bytes: msg.content.length }, "demo mainframe: malformed request record ignored");
      return;
    }
    const orderId = record.slice(4).trimEnd();
    const send = () => {
      timers.delete(timer);
      try {
        channel.sendToQueue(replyTo, Buffer.from(replyRecord(orderId), "latin1"), {
          correlationId: typeof correlationId === "string" ? correlationId : undefined,
          contentType: "text/plain",
        });
      } catch {
        // The channel closed while the slow reply waited: nobody is listening any more.
      }
    };
    const timer = setTimeout(send, orderId === SLOW_ORDER ? SLOW_DELAY_MS : 20);
    timers.add(timer);
  };
  await channel.consume(REQUEST_QUEUE, (msg) => msg && answer(msg), { noAck: false });
  log.info({ queue: REQUEST_QUEUE }, "demo mainframe order-status responder listening");
  return {
    close: async () => {
      for (const t of timers) clearTimeout(t);
      await model.close().catch(() => undefined);
    },
  };
}
