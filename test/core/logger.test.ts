import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger, LOG_FLUSH_MS, REDACTED, redactSecrets } from "../../src/core/logger.js";

/** A logger writing JSON lines into an array, as pino writes them to stderr. */
function capture(level = "info") {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(line) });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, parsed };
}

describe("log redaction", () => {
  it("hides credential-named keys in any spelling and at any depth, and keeps the rest", () => {
    const { logger, lines, parsed } = capture();
    const original = {
      token: "t-top",
      connector: { name: "orders", clientSecret: "cs-1", auth: { password: "pw-1", user: "svc" } },
      headers: { Authorization: "Bearer abc", "x-api-key": "k-1", "Set-Cookie": "sid=1", accept: "json" },
      list: [{ access_token: "at-1", id: 7 }, "plain"],
      db: { connectionString: "postgres://u:p@h/db", privateKey: "-----BEGIN" },
      url: "postgres://u:p@h/db",
      upstream: { url: "https://api.example.com/v1" },
    };
    const before = JSON.stringify(original);
    logger.info(original, "hello");
    const line = lines.join("");
    for (const secret of ["t-top", "cs-1", "pw-1", "Bearer abc", "k-1", "sid=1", "at-1", "u:p@h", "BEGIN"]) {
      expect(line).not.toContain(secret);
    }
    const [out] = parsed();
    expect(out).toMatchObject({
      msg: "hello",
      token: REDACTED,
      connector: { name: "orders", clientSecret: REDACTED, auth: { password: REDACTED, user: "svc" } },
      headers: { Authorization: REDACTED, "x-api-key": REDACTED, "Set-Cookie": REDACTED, accept: "json" },
      list: [{ access_token: REDACTED, id: 7 }, "plain"],
      db: { connectionString: REDACTED, privateKey: REDACTED },
      url: REDACTED,
      // Only a top-level `url` is a connection URL; an upstream's address is worth logging.
      upstream: { url: "https://api.example.com/v1" },
    });
    // The caller's object is never changed.
    expect(JSON.stringify(original)).toBe(before);
  });

  it("returns the very object when there is nothing to hide (no copy per log line)", () => {
    const event = { callId: "c-1", tool: "orders__get", latencyMs: 3, nested: { a: [1, { b: "c" }] } };
    expect(redactSecrets(event)).toBe(event);
    expect(redactSecrets("text")).toBe("text");
    expect(redactSecrets(null)).toBe(null);
  });

  it("redacts inside errors (own properties and the cause) and keeps the error's type, message and stack", () => {
    class UpstreamFailure extends Error {}
    const cause = Object.assign(new Error("login failed"), { password: "pw-cause" });
    const err = Object.assign(new UpstreamFailure("upstream said no", { cause }), {
      config: { headers: { authorization: "Bearer leaked" } },
      status: 502,
    });
    const { logger, lines, parsed } = capture();
    logger.error({ err }, "call failed");
    expect(lines.join("")).not.toContain("leaked");
    expect(lines.join("")).not.toContain("pw-cause");
    const out = parsed()[0]!.err as Record<string, unknown>;
    expect(out.type).toBe("UpstreamFailure");
    expect(out.message).toContain("upstream said no");
    expect(String(out.stack)).toContain("upstream said no");
    expect(out.status).toBe(502);
    expect(out.config).toEqual({ headers: { authorization: REDACTED } });
    // The error the caller holds still has its values.
    expect(err.config.headers.authorization).toBe("Bearer leaked");
  });

  it("redacts child-logger bindings", () => {
    const { logger, lines, parsed } = capture();
    logger.child({ callId: "c-9", apiKey: "k-child" }).info("bound");
    expect(lines.join("")).not.toContain("k-child");
    expect(parsed()[0]).toMatchObject({ callId: "c-9", apiKey: REDACTED, msg: "bound" });
  });

  it("survives cycles, shared sub-objects and frozen objects without leaking", () => {
    const shared = { secret: "s-shared", keep: 1 };
    const cyclic: Record<string, unknown> = { name: "loop", a: shared, b: shared };
    cyclic.self = { back: cyclic, token: "t-cycle" };
    const frozen = Object.freeze({ password: "pw-frozen", user: "u" });
    const { logger, lines, parsed } = capture();
    logger.info({ cyclic, frozen }, "odd shapes");
    const line = lines.join("");
    for (const secret of ["s-shared", "t-cycle", "pw-frozen"]) expect(line).not.toContain(secret);
    const out = parsed()[0] as { cyclic: Record<string, unknown>; frozen: unknown };
    expect(out.cyclic.a).toEqual({ secret: REDACTED, keep: 1 });
    expect(out.cyclic.b).toEqual({ secret: REDACTED, keep: 1 });
    expect(out.cyclic.self).toEqual({ back: "[Circular]", token: REDACTED });
    expect(out.frozen).toEqual({ password: REDACTED, user: "u" });
  });

  it("leaves values below the depth limit alone rather than walking without end", () => {
    let deep: Record<string, unknown> = { token: "too-deep" };
    for (let i = 0; i < 20; i++) deep = { next: deep };
    const result = redactSecrets({ deep, token: "top" });
    expect(result.token).toBe(REDACTED);
    expect(result.deep).toBe(deep);
  });
});

describe("log output on stderr", () => {
  /** The stderr lines of the fixture child: it logs one line, waits `waitMs`, writes MARKER directly, exits. */
  function stderrOf(file: string, waitMs: number): string[] {
    const run = spawnSync(process.execPath, ["--import", "tsx", file, String(waitMs)], { encoding: "utf8" });
    expect(run.status).toBe(0);
    return run.stderr.split("\n").filter((l) => l !== "");
  }

  it("batches lines: one logged just before another write is still buffered, and is written at exit", () => {
    const lines = stderrOf(join(import.meta.dirname, "fixtures", "log-child.ts"), 20);
    expect(lines[0]).toBe("MARKER");
    expect(JSON.parse(lines[1]!)).toMatchObject({ msg: "first line", n: 1 });
    expect(lines).toHaveLength(2);
  });

  it(`writes buffered lines within ${LOG_FLUSH_MS} ms without waiting for more`, () => {
    const lines = stderrOf(join(import.meta.dirname, "fixtures", "log-child.ts"), LOG_FLUSH_MS * 3);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: "first line" });
    expect(lines[1]).toBe("MARKER");
  });
});
