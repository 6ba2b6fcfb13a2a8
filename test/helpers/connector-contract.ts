import { describe, expect, it } from "vitest";
import {
  TOOL_NAME_PATTERN,
  type Connector,
  type Identity,
  type InvocationContext,
  type ToolDefinition,
} from "../../src/core/index.js";
import { testLogger } from "./logger.js";

export const testIdentity: Identity = {
  subject: "contract-test",
  scopes: ["test"],
  claims: {},
  source: "local",
};

export function testContext(overrides: Partial<InvocationContext> = {}): InvocationContext {
  return {
    callId: `call-${Math.random().toString(36).slice(2)}`,
    identity: testIdentity,
    signal: new AbortController().signal,
    timeoutMs: 5_000,
    logger: testLogger,
    ...overrides,
  };
}

export interface ContractSubject {
  connector: Connector;
  /** A tool and arguments that succeed against the real backend. */
  okCall: { tool: string; arguments: Record<string, unknown> };
}

/**
 * The one suite every connector kind passes (HOUSE-STYLE: one contract suite, run against
 * every connector). `setup` starts the real backend and the connector; `teardown` stops both.
 */
export function connectorContract(
  kind: string,
  setup: () => Promise<ContractSubject>,
  teardown: () => Promise<void>,
): void {
  describe(`connector contract: ${kind}`, () => {
    let subject: ContractSubject;

    it("starts and reports its tools", async () => {
      subject = await setup();
      expect(subject.connector.kind).toBe(kind);
      expect(subject.connector.tools().length).toBeGreaterThan(0);
    });

    it("names every tool <connector>__<operation> within the client-safe alphabet", () => {
      const prefix = `${subject.connector.name}__`;
      for (const tool of subject.connector.tools()) {
        expect(tool.name).toMatch(TOOL_NAME_PATTERN);
        expect(tool.name.startsWith(prefix)).toBe(true);
        expect(tool.connector).toBe(subject.connector.name);
      }
      const names = subject.connector.tools().map((t) => t.name);
      expect(new Set(names).size).toBe(names.length);
    });

    it("gives every tool an object input schema, a description and all four annotations", () => {
      for (const tool of subject.connector.tools()) {
        expect(tool.inputSchema.type).toBe("object");
        expect(typeof tool.description).toBe("string");
        for (const hint of ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"] as const) {
          expect(typeof tool.annotations[hint]).toBe("boolean");
        }
        if (tool.annotations.readOnlyHint) expect(tool.annotations.destructiveHint).toBe(false);
      }
    });

    it("returns a structured object for a good call", async () => {
      const tool = findTool(subject.connector, subject.okCall.tool);
      const result = await subject.connector.invoke(
        { tool, arguments: subject.okCall.arguments },
        testContext(),
      );
      expect(result.isError ?? false).toBe(false);
      expect(typeof result.structuredContent).toBe("object");
      expect(Array.isArray(result.structuredContent)).toBe(false);
    });

    it("honours an already-aborted signal without calling out", async () => {
      const tool = findTool(subject.connector, subject.okCall.tool);
      const ac = new AbortController();
      ac.abort(new Error("cancelled by test"));
      await expect(
        subject.connector.invoke(
          { tool, arguments: subject.okCall.arguments },
          testContext({ signal: ac.signal }),
        ),
      ).rejects.toThrow();
    });

    it("reports health", async () => {
      const health = await subject.connector.health();
      expect(health.ok).toBe(true);
    });

    it("closes, and closing twice is harmless", async () => {
      await subject.connector.close();
      await subject.connector.close();
      await teardown();
    });
  });
}

export function findTool(connector: Connector, name: string): ToolDefinition {
  const tool = connector.tools().find((t) => t.name === name);
  if (!tool)
    throw new Error(
      `tool ${name} not found; have ${connector
        .tools()
        .map((t) => t.name)
        .join(", ")}`,
    );
  return tool;
}
