import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadJsonFile } from "../../../src/config/load-file.js";
import { mqFactory } from "../../../src/connectors/mq/index.js";

const dir = mkdtempSync(join(tmpdir(), "portcullis-mq-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const baseTool = {
  name: "status",
  description: "d",
  requestQueue: "Q.REQ",
  format: { type: "json" },
  requestSchema: { type: "object", properties: { id: { type: "string" } } },
  replySchema: { type: "object" },
};

function problems(doc: unknown): string[] {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  try {
    loadJsonFile(file, mqFactory.configSchema, {}, "connectors/mq.json");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  return [];
}

const amqp = { type: "amqp", url: "amqp://localhost" };

describe("mq connector config", () => {
  it("accepts the shipped demo connector file", () => {
    const { value } = loadJsonFile(
      join(process.cwd(), "connectors/mainframe.json"),
      mqFactory.configSchema,
      {},
    );
    expect(value.transport).toEqual({
      type: "amqp",
      url: "amqp://guest:guest@127.0.0.1:5672",
      connectTimeoutMs: 3000,
    });
    expect(value.tools[0]!.format.type).toBe("fixed");
  });

  it("refuses unknown keys at every level, naming the path", () => {
    expect(
      problems({
        kind: "mq",
        name: "m",
        transport: { ...amqp, vhost: "x" },
        tools: [{ ...baseTool, queue: "x" }],
      }),
    ).toEqual([
      expect.stringMatching(/^transport\.vhost: unknown key "vhost"/),
      expect.stringMatching(/^tools\[0\]\.queue: unknown key "queue"/),
    ]);
  });

  it("names record layout problems and disagreements between layout and schemas", () => {
    const found = problems({
      kind: "mq",
      name: "m",
      transport: amqp,
      tools: [
        {
          ...baseTool,
          format: {
            type: "fixed",
            request: [
              { name: "id", length: 4, type: "alphanumeric" },
              { name: "amount", length: 1, type: "numeric", sign: "leading-separate" },
            ],
            reply: [{ name: "status", length: 2, type: "alphanumeric" }],
          },
          requestSchema: {
            type: "object",
            properties: { id: { type: "string" }, extra: { type: "string" } },
          },
          replySchema: {
            type: "object",
            properties: { status: { type: "string" }, total: { type: "string" } },
          },
        },
      ],
    });
    expect(found).toEqual([
      expect.stringMatching(
        /^tools\[0\]\.format\.request\[1\]\.length: a separate sign needs a length of at least 2/,
      ),
      expect.stringMatching(
        /^tools\[0\]\.requestSchema\.properties\.extra: argument "extra" has no field in format\.request/,
      ),
      expect.stringMatching(
        /^tools\[0\]\.format\.request\[1\]\.name: field "amount" has neither an argument in requestSchema nor a default/,
      ),
      expect.stringMatching(
        /^tools\[0\]\.replySchema\.properties\.total: property "total" has no field in format\.reply/,
      ),
    ]);
  });

  it("refuses non-object schemas, invalid JSON Schemas, the reserved tool name and duplicates", () => {
    const found = problems({
      kind: "mq",
      name: "m",
      transport: amqp,
      tools: [
        { ...baseTool, name: "get_reply" },
        { ...baseTool, requestSchema: { type: "array" } },
        { ...baseTool, name: "other", replySchema: { type: "object", properties: { a: { type: "nope" } } } },
      ],
    });
    expect(found).toEqual([
      expect.stringMatching(/^tools\[0\]\.name: "get_reply" is reserved/),
      expect.stringMatching(/^tools\[1\]\.requestSchema\.type: must be "object"/),
      expect.stringMatching(/^tools\[2\]\.replySchema: is not a valid JSON Schema/),
    ]);
    expect(
      problems({
        kind: "mq",
        name: "m",
        transport: amqp,
        tools: [baseTool, { ...baseTool, name: "STATUS" }],
      }),
    ).toEqual([expect.stringMatching(/^tools\[1\]\.name: duplicate tool name "STATUS" \(also tools\[0\]\)/)]);
  });

  it("checks the IBM MQ connection fields", () => {
    const ibm = (t: Record<string, unknown>) =>
      problems({
        kind: "mq",
        name: "m",
        transport: { type: "ibmmq", queueManager: "QM1", ...t },
        tools: [baseTool],
      });
    expect(ibm({ channel: "C", connName: "h(1414)" })).toEqual([]);
    expect(ibm({ channel: "C" })).toEqual([
      expect.stringMatching(/^transport\.connName: channel and connName are required unless ccdtUrl is set/),
    ]);
    expect(ibm({ ccdtUrl: "file:///x.json", channel: "C" })).toEqual([
      expect.stringMatching(/^transport\.ccdtUrl: use either ccdtUrl or channel \+ connName, not both/),
    ]);
    expect(ibm({ ccdtUrl: "file:///x.json", user: "u" })).toEqual([
      expect.stringMatching(/^transport\.password: user and password go together/),
    ]);
    expect(ibm({ ccdtUrl: "file:///x.json", dynamicQueuePrefix: "bad" })).toEqual([
      expect.stringMatching(/^transport\.dynamicQueuePrefix: .*a prefix ending in '\*'/),
    ]);
  });

  it("refuses XML element names that are not names", () => {
    expect(
      problems({
        kind: "mq",
        name: "m",
        transport: amqp,
        tools: [{ ...baseTool, format: { type: "xml", requestRoot: "1bad" } }],
      }),
    ).toEqual([expect.stringMatching(/^tools\[0\]\.format\.requestRoot: is not a valid XML element name/)]);
  });
});
