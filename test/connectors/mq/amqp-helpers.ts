import { randomUUID } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from "amqplib";

/** Queue names unique to this run, so parallel suites on the shared broker never meet. */
export function uniqueQueue(label: string): string {
  return `portcullis-test-mq-${label}-${randomUUID().slice(0, 8)}`;
}

export type Handler = (msg: ConsumeMessage, responder: Responder) => void | Promise<void>;

/**
 * Plays the mainframe: consumes a request queue on its own connection and answers on the
 * message's replyTo with its correlationId, the way an MQ-enabled CICS/IMS program does.
 */
export class Responder {
  readonly received: ConsumeMessage[] = [];
  private constructor(
    private readonly model: ChannelModel,
    readonly channel: Channel,
    readonly queue: string,
  ) {}

  static async start(url: string, queue: string, handler: Handler | undefined): Promise<Responder> {
    const model = await connect(url);
    const channel = await model.createChannel();
    await channel.assertQueue(queue, { durable: false, autoDelete: false });
    const r = new Responder(model, channel, queue);
    if (handler) await r.consume(handler);
    return r;
  }

  async consume(handler: Handler): Promise<void> {
    await this.channel.consume(
      this.queue,
      (msg) => {
        if (!msg) return;
        this.received.push(msg);
        void handler(msg, this);
      },
      { noAck: true },
    );
  }

  reply(msg: ConsumeMessage, body: string | Buffer, correlationId?: string): void {
    const replyTo = msg.properties.replyTo as string;
    this.channel.sendToQueue(replyTo, typeof body === "string" ? Buffer.from(body, "utf8") : body, {
      correlationId: correlationId ?? (msg.properties.correlationId as string),
    });
  }

  async close(deleteQueue = true): Promise<void> {
    if (deleteQueue) await this.channel.deleteQueue(this.queue).catch(() => undefined);
    await this.model.close().catch(() => undefined);
  }
}

/** A TCP relay between the connector and the broker; `cut()` drops every connection like a network failure. */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private port = 0;

  private constructor(target: URL) {
    const host = target.hostname;
    const port = Number(target.port || 5672);
    this.server = createServer((client) => {
      const upstream = createConnection({ host, port });
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.pipe(upstream).pipe(client);
    });
  }

  static async start(target: URL): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    const address = proxy.server.address();
    if (typeof address !== "object" || address === null) throw new Error("proxy did not bind");
    proxy.port = address.port;
    return proxy;
  }

  /** Rewrites a broker URL to go through this proxy. */
  url(brokerUrl: string): string {
    const u = new URL(brokerUrl);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /** Destroys every relayed connection, both sides, as a network failure would. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function waitFor(check: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
