import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";

/** A raw JSON-RPC `initialize`, for tests that speak Streamable HTTP without the SDK client. */
export const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: LATEST_PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
};
