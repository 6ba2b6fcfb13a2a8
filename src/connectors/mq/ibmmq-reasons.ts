import { GatewayError, type ErrorCode } from "../../core/index.js";
import type { MqErrorLike } from "./ibmmq-api.js";

/**
 * MQ reason codes (MQRC_*) turned into messages an operator or agent can act on. `reconnect`
 * marks the codes after which the connection handle is no longer usable.
 */
interface Reason {
  readonly code: ErrorCode;
  readonly text: string;
  readonly reconnect?: boolean;
}

const REASONS: Record<number, Reason> = {
  2033: { code: "UPSTREAM_TIMEOUT", text: "no reply in time (MQRC_NO_MSG_AVAILABLE)" },
  2009: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "connection to the queue manager broken (MQRC_CONNECTION_BROKEN)",
    reconnect: true,
  },
  2059: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "queue manager not available (MQRC_Q_MGR_NOT_AVAILABLE)",
    reconnect: true,
  },
  2161: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "queue manager quiescing (MQRC_Q_MGR_QUIESCING)",
    reconnect: true,
  },
  2162: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "queue manager stopping (MQRC_Q_MGR_STOPPING)",
    reconnect: true,
  },
  2202: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "connection quiescing (MQRC_CONNECTION_QUIESCING)",
    reconnect: true,
  },
  2203: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "connection stopping (MQRC_CONNECTION_STOPPING)",
    reconnect: true,
  },
  2018: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "connection handle no longer valid (MQRC_HCONN_ERROR)",
    reconnect: true,
  },
  2537: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "channel not available (MQRC_CHANNEL_NOT_AVAILABLE)",
    reconnect: true,
  },
  2538: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "host not available (MQRC_HOST_NOT_AVAILABLE)",
    reconnect: true,
  },
  2548: { code: "UPSTREAM_UNAVAILABLE", text: "reconnect failed (MQRC_RECONNECT_FAILED)", reconnect: true },
  2035: {
    code: "UPSTREAM_ERROR",
    text: "not authorised (MQRC_NOT_AUTHORIZED): check the user, password and the channel's CHLAUTH/CONNAUTH rules",
  },
  2085: { code: "UPSTREAM_ERROR", text: "unknown queue (MQRC_UNKNOWN_OBJECT_NAME)" },
  2053: {
    code: "UPSTREAM_UNAVAILABLE",
    text: "queue full (MQRC_Q_FULL): the mainframe side is not draining it",
  },
  2051: { code: "UPSTREAM_UNAVAILABLE", text: "put inhibited on the queue (MQRC_PUT_INHIBITED)" },
  2016: { code: "UPSTREAM_UNAVAILABLE", text: "get inhibited on the queue (MQRC_GET_INHIBITED)" },
  2042: {
    code: "UPSTREAM_ERROR",
    text: "queue in exclusive use by another application (MQRC_OBJECT_IN_USE)",
  },
  2058: {
    code: "UPSTREAM_ERROR",
    text: "queue manager name not known on this channel (MQRC_Q_MGR_NAME_ERROR)",
  },
  2540: { code: "UPSTREAM_ERROR", text: "unknown channel name (MQRC_UNKNOWN_CHANNEL_NAME)" },
  2393: {
    code: "UPSTREAM_ERROR",
    text: "TLS initialisation failed (MQRC_SSL_INITIALIZATION_ERROR): check the key repository and cipher spec",
  },
  2381: { code: "UPSTREAM_ERROR", text: "TLS key repository error (MQRC_KEY_REPOSITORY_ERROR)" },
  2397: { code: "UPSTREAM_ERROR", text: "TLS cipher spec not accepted (MQRC_JSSE_ERROR/cipher mismatch)" },
  2030: { code: "UPSTREAM_BAD_RESPONSE", text: "message too big for the queue (MQRC_MSG_TOO_BIG_FOR_Q)" },
  2080: { code: "UPSTREAM_BAD_RESPONSE", text: "reply larger than the buffer (MQRC_TRUNCATED_MSG_FAILED)" },
  2110: { code: "UPSTREAM_BAD_RESPONSE", text: "reply format not convertible (MQRC_FORMAT_ERROR)" },
  2119: {
    code: "UPSTREAM_BAD_RESPONSE",
    text: "reply could not be converted to the requested code page (MQRC_NOT_CONVERTED)",
  },
};

export function reasonOf(err: unknown): number | undefined {
  const rc = (err as { mqrc?: unknown } | null)?.mqrc;
  return typeof rc === "number" ? rc : undefined;
}

export function needsReconnect(err: unknown): boolean {
  const rc = reasonOf(err);
  return rc !== undefined && REASONS[rc]?.reconnect === true;
}

/** `connector "x" (mq): MQPUT on ORDERS.REQ failed: queue full (MQRC_Q_FULL) [2053]`. */
export function mqError(label: string, verb: string, target: string, err: unknown): GatewayError {
  const rc = reasonOf(err);
  const known = rc === undefined ? undefined : REASONS[rc];
  const what = known?.text ?? (rc === undefined ? "unexpected error" : `reason code ${rc}`);
  const code: ErrorCode = known?.code ?? "UPSTREAM_ERROR";
  return new GatewayError(
    code,
    `${label}: ${verb}${target ? ` on ${target}` : ""} failed: ${what}${rc === undefined ? "" : ` [${rc}]`}`,
    {
      cause: err as MqErrorLike,
      details: rc === undefined ? undefined : { mqrc: rc },
    },
  );
}
