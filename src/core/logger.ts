import { pino, type Logger } from "pino";

/**
 * Log lines go to stderr only: under stdio, stdout is the MCP protocol and one stray byte breaks
 * the client. Anything that looks like a credential is redacted wherever it appears.
 */
export function createLogger(level: string = "info"): Logger {
  return pino(
    {
      level,
      base: { service: "portcullis" },
      redact: {
        paths: [
          "token",
          "*.token",
          "password",
          "*.password",
          "secret",
          "*.secret",
          "authorization",
          "*.authorization",
          "headers.authorization",
          "*.headers.authorization",
          "req.headers.authorization",
          "headers.cookie",
          "*.headers.cookie",
          "clientSecret",
          "*.clientSecret",
          "apiKey",
          "*.apiKey",
          "url",
          "*.connectionString",
        ],
        censor: "[redacted]",
      },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

export type { Logger };
