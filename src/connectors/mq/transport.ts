import type { GatewayError } from "../../core/index.js";
import type { RecordEncoding } from "./fixed-width.js";

/**
 * What the bridge needs from a message transport (AMQP, IBM MQ). The bridge owns correlation,
 * budgets, late replies and reconnects; a transport only connects, puts, listens and reports.
 */
export interface MqTransport {
  readonly type: "amqp" | "ibmmq";
  /** Connects (or reconnects from scratch) and starts listening for replies. Rejects with a GatewayError. */
  connect(events: TransportEvents): Promise<void>;
  /** Puts one request; resolves once the broker has taken responsibility for it (confirm / MQPUT ok). */
  send(request: TransportRequest): Promise<void>;
  /** Nobody waits for this request's reply any more; a transport may stop listening for it. */
  abandon(id: string): void;
  /** Closes the connection; idempotent. */
  close(): Promise<void>;
}

export interface TransportEvents {
  reply(reply: TransportReply): void;
  /** This request will get no reply through the transport (unroutable, get failed). */
  failed(id: string, error: GatewayError): void;
  /** The connection is gone; replies in flight are lost. The bridge reconnects. */
  lost(error: GatewayError): void;
}

export interface TransportRequest {
  /** Correlation id chosen by the bridge (unique per request). */
  readonly id: string;
  readonly operation: string;
  readonly requestQueue: string;
  /** Fixed reply queue, or undefined for the transport's temporary one. */
  readonly replyQueue: string | undefined;
  readonly body: Buffer;
  readonly contentType: string;
  readonly charset: RecordEncoding;
  /** Request expiry in ms; 0 = never. */
  readonly expiryMs: number;
  readonly persistent: boolean;
  readonly priority: number | undefined;
  /** How long the transport should listen for the reply, in ms. */
  readonly listenMs: number;
  readonly traceparent: string | undefined;
  readonly callId: string;
}

export interface TransportReply {
  /** The correlation id the reply carries, or undefined when it carries none. */
  readonly id: string | undefined;
  readonly body: Buffer;
}
