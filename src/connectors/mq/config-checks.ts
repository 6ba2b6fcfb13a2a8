import type { z } from "zod";
import { createAjv } from "./json-schema.js";
import { compileLayout } from "./fixed-width.js";
import { GET_REPLY_OPERATION } from "./names.js";
import type { FixedField } from "./config.js";

interface ToolLike {
  name: string;
  requestSchema: Record<string, unknown>;
  replySchema: Record<string, unknown>;
  format:
    | { type: "json" }
    | { type: "xml"; requestRoot: string; replyRoot?: string | undefined }
    | {
        type: "fixed";
        encoding?: "ascii" | "latin1" | "utf8" | undefined;
        request: FixedField[];
        reply: FixedField[];
      };
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

/**
 * Checks that a zod shape cannot express: schemas that compile, record layouts that add up, and
 * record layouts that agree with the JSON Schemas the agent and the reply validation see. Every
 * problem names its JSON path so the loader can point at the line.
 */
export function checkToolConsistency(config: { tools: ToolLike[] }, ctx: z.RefinementCtx): void {
  const ajv = createAjv(false);
  const names = new Map<string, number>();
  config.tools.forEach((tool, t) => {
    const at = (...rest: (string | number)[]) => ["tools", t, ...rest];
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: "custom", path, message });
    const lower = tool.name.toLowerCase();
    if (lower === GET_REPLY_OPERATION)
      issue(at("name"), `"${GET_REPLY_OPERATION}" is reserved for the built-in late-reply tool`);
    const prev = names.get(lower);
    if (prev !== undefined) issue(at("name"), `duplicate tool name "${tool.name}" (also tools[${prev}])`);
    else names.set(lower, t);

    for (const key of ["requestSchema", "replySchema"] as const) {
      const schema = tool[key];
      if (schema.type !== "object") {
        issue(
          at(key, "type"),
          `must be "object" (${key === "requestSchema" ? "tool arguments" : "tool results"} are JSON objects)`,
        );
        continue;
      }
      try {
        ajv.compile(schema);
      } catch (err) {
        issue(at(key), `is not a valid JSON Schema: ${(err as Error).message.slice(0, 200)}`);
      }
    }

    const format = tool.format;
    if (format.type === "xml") {
      if (!XML_NAME.test(format.requestRoot))
        issue(at("format", "requestRoot"), "is not a valid XML element name");
      if (format.replyRoot !== undefined && !XML_NAME.test(format.replyRoot)) {
        issue(at("format", "replyRoot"), "is not a valid XML element name");
      }
    }
    if (format.type !== "fixed") return;
    const encoding = format.encoding ?? "latin1";
    for (const side of ["request", "reply"] as const) {
      const { problems } = compileLayout(format[side], encoding);
      for (const p of problems) issue(at("format", side, p.index, p.key), p.message);
    }
    const props = (schema: Record<string, unknown>) =>
      typeof schema.properties === "object" && schema.properties !== null
        ? Object.keys(schema.properties as Record<string, unknown>)
        : [];
    const requestFields = new Map(
      format.request.filter((f) => f.type !== "filler").map((f, i) => [f.name, { f, i }]),
    );
    const requestProps = new Set(props(tool.requestSchema));
    for (const name of requestProps) {
      if (!requestFields.has(name)) {
        issue(at("requestSchema", "properties", name), `argument "${name}" has no field in format.request`);
      }
    }
    format.request.forEach((f, i) => {
      if (f.type !== "filler" && f.default === undefined && !requestProps.has(f.name)) {
        issue(
          at("format", "request", i, "name"),
          `field "${f.name}" has neither an argument in requestSchema nor a default`,
        );
      }
    });
    const replyFields = new Set(format.reply.filter((f) => f.type !== "filler").map((f) => f.name));
    for (const name of props(tool.replySchema)) {
      if (!replyFields.has(name))
        issue(at("replySchema", "properties", name), `property "${name}" has no field in format.reply`);
    }
  });
}
