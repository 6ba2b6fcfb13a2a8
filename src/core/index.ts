export * from "./errors.js";
export * from "./types.js";
export * from "./tool-name.js";
export * from "./connector-config.js";
export * from "./json.js";
export * from "./governance.js";
export * from "./logger.js";
