import { randomUUID } from "node:crypto";
import { connect, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message } from "amqplib";
import type { Logger } from "pino";
import { GatewayError } from "../../core/index.js";
import type { AmqpTransportConfig } from "./config.js";
import type { MqTransport, TransportEvents, TransportRequest } from "./transport.js";

export interface AmqpTransportOptions {
  readonly label: string;
  readonly config: AmqpTransportConfig;
  /** Every fixed reply queue any tool names; each is consumed on connect. */
  readonly fixedReplyQueues: readonly string[];
  /** Upper bound of unacknowledged replies the broker pushes at once. */
  readonly prefetch: number;
  readonly connectTimeoutMs: number;
  readonly logger: Logger;
}

interface Session {
  readonly model: ChannelModel;
  readonly channel: ConfirmChannel;
  readonly replyQueue: string;
  readonly generation: number;
}

/**
 * AMQP 0-9-1 (RabbitMQ and compatible). Requests go to the default exchange with the request
 * queue as routing key, `mandatory` so an unknown queue comes back as a return instead of
 * vanishing, on a confirm channel so "sent" means the broker has it. Replies arrive on an
 * exclusive server-named queue (or the tool's fixed one) and are matched by `correlationId`.
 */
export class AmqpTransport implements MqTransport {
  readonly type = "amqp" as const;
  private readonly o: AmqpTransportOptions;
  private session: Session | undefined;
  private generation = 0;
  private closing = false;

  constructor(options: AmqpTransportOptions) {
    this.o = options;
  }

  async connect(events: TransportEvents): Promise<void> {
    await this.dispose();
    this.closing = false;
    const generation = ++this.generation;
    const { label, config } = this.o;
    let model: ChannelModel;
    try {
      model = await connect(config.url, {
        timeout: this.o.connectTimeoutMs,
        clientProperties: { connection_name: `portcullis ${label} ${randomUUID().slice(0, 8)}` },
      });
    } catch (err) {
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${label}: cannot connect to the AMQP broker at ${redactUrl(config.url)}: ${describe(err)}`,
        {
          cause: err,
        },
      );
    }
    const lost = (why: string, err?: unknown) => {
      if (this.closing || generation !== this.generation) return;
      this.session = undefined;
      // Close whatever is left so a half-dead connection does not linger next to the new one.
      model.close().catch(() => undefined);
      events.lost(
        new GatewayError("UPSTREAM_UNAVAILABLE", `${label}: AMQP ${why}${err ? `: ${describe(err)}` : ""}`, {
          cause: err,
        }),
      );
    };
    model.on("error", (err: unknown) => this.o.logger.warn({ err: describe(err) }, "amqp connection error"));
    model.on("close", (err?: unknown) => lost("connection closed", err));
    model.on("blocked", (reason: string) =>
      this.o.logger.warn({ reason }, "amqp connection blocked by the broker (resource alarm)"),
    );
    try {
      const channel = await model.createConfirmChannel();
      channel.on("error", (err: unknown) => this.o.logger.warn({ err: describe(err) }, "amqp channel error"));
      channel.on("close", () => lost("channel closed"));
      channel.on("return", (msg: Message) => {
        const id: unknown = msg.properties.correlationId;
        if (typeof id !== "string") return;
        events.failed(
          id,
          new GatewayError(
            "UPSTREAM_ERROR",
            `${label}: no queue named "${msg.fields.routingKey}" on the broker; the request was returned undelivered`,
          ),
        );
      });
      await channel.prefetch(this.o.prefetch);
      const { queue: replyQueue } = await channel.assertQueue("", {
        exclusive: true,
        autoDelete: true,
        durable: false,
      });
      const onMessage = (msg: ConsumeMessage | null) => {
        if (msg === null) {
          lost("reply consumer cancelled by the broker");
          return;
        }
        channel.ack(msg);
        const id: unknown = msg.properties.correlationId;
        events.reply({ id: typeof id === "string" && id !== "" ? id : undefined, body: msg.content });
      };
      await channel.consume(replyQueue, onMessage, { noAck: false, exclusive: true });
      for (const q of this.o.fixedReplyQueues) {
        await channel.checkQueue(q).catch((err: unknown) => {
          throw new GatewayError(
            "UPSTREAM_ERROR",
            `${label}: reply queue "${q}" does not exist on the broker (${describe(err)})`,
            {
              cause: err,
            },
          );
        });
        await channel.consume(q, onMessage, { noAck: false });
      }
      this.session = { model, channel, replyQueue, generation };
    } catch (err) {
      this.closing = true;
      await model.close().catch(() => undefined);
      this.closing = false;
      if (err instanceof GatewayError) throw err;
      throw new GatewayError(
        "UPSTREAM_UNAVAILABLE",
        `${label}: cannot set up the AMQP channel: ${describe(err)}`,
        { cause: err },
      );
    }
  }

  send(req: TransportRequest): Promise<void> {
    const s = this.session;
    if (!s)
      return Promise.reject(
        new GatewayError("UPSTREAM_UNAVAILABLE", `${this.o.label}: not connected to the AMQP broker`),
      );
    const headers: Record<string, string> = { "portcullis-call-id": req.callId };
    if (req.traceparent) headers.traceparent = req.traceparent;
    return new Promise<void>((resolve, reject) => {
      try {
        s.channel.sendToQueue(
          req.requestQueue,
          req.body,
          {
            correlationId: req.id,
            messageId: req.id,
            replyTo: req.replyQueue ?? s.replyQueue,
            contentType: req.contentType,
            contentEncoding:
              req.charset === "utf8" ? "utf-8" : req.charset === "latin1" ? "iso-8859-1" : "us-ascii",
            persistent: req.persistent,
            ...(req.expiryMs > 0 ? { expiration: String(req.expiryMs) } : {}),
            ...(req.priority === undefined ? {} : { priority: req.priority }),
            type: req.operation,
            appId: "portcullis",
            timestamp: Math.floor(Date.now() / 1000),
            mandatory: true,
            headers,
          },
          (err: unknown) => {
            if (err) {
              reject(
                new GatewayError(
                  "UPSTREAM_UNAVAILABLE",
                  `${this.o.label}: the broker did not accept the request (${describe(err)})`,
                  { cause: err },
                ),
              );
            } else resolve();
          },
        );
      } catch (err) {
        reject(
          new GatewayError(
            "UPSTREAM_UNAVAILABLE",
            `${this.o.label}: cannot publish the request: ${describe(err)}`,
            { cause: err },
          ),
        );
      }
    });
  }

  abandon(): void {
    // Replies share one consumer; a late one is counted and dropped by the bridge.
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.dispose();
  }

  private async dispose(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (!s) return;
    const wasClosing = this.closing;
    this.closing = true;
    await s.model.close().catch(() => undefined);
    this.closing = wasClosing;
  }
}

function describe(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return redactUrl(msg).slice(0, 300);
}

/** Broker URLs carry credentials; never let them reach a message or a log. */
export function redactUrl(text: string): string {
  return text.replace(/(amqps?:\/\/)[^@/\s]*@/gi, "$1***@");
}
