export { openAuditLog, openAuditReader, type OpenAuditLogOptions, type OpenAuditReaderOptions } from "./open.js";
export { AuditLog, type AuditHealth } from "./log.js";
export { AuditReader, type AuditQuery, type AuditPage, type AuditRecordView } from "./reader.js";
export { createAuditRoutes, type AuditRouteHandler, type AuditRouteContext } from "./http.js";
export { runAuditCommand, type CliEnv } from "./cli.js";
export type { VerifyReport, VerifyFailure, VerifyFailureKind } from "./verify.js";
export type { SignedCheckpoint } from "./checkpoint.js";
export type { InclusionBundle, ConsistencyBundle } from "./proof-bundle.js";
export { verifyInclusionBundle } from "./proof-bundle.js";
