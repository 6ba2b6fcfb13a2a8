import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { findNodeAtLocation, parseTree, printParseErrorCode, type Node, type ParseError } from "jsonc-parser";
import type { z } from "zod";
import { GatewayError } from "../core/errors.js";

/** One thing wrong with one config file, precise enough to fix without reading the code. */
export interface ConfigProblem {
  file: string;
  /** JSON path, e.g. `transports.http.port` or `tools[2].statement`; empty for the whole file. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? "" : `:${p.line}${p.column === undefined ? "" : `:${p.column}`}`;
  const path = p.path === "" ? "" : ` at ${p.path}`;
  return `${p.file}${where}${path}: ${p.message}`;
}

/** All problems found while loading a configuration, raised together so `validate` shows them all. */
export class ConfigError extends GatewayError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      "CONFIG_INVALID",
      problems.length === 1
        ? `invalid configuration: ${formatProblem(problems[0]!)}`
        : `invalid configuration (${problems.length} problems):\n${problems.map((p) => `  - ${formatProblem(p)}`).join("\n")}`,
    );
    this.problems = problems;
  }
}

/** A parsed JSON document that remembers where each value came from. */
export class JsonSource {
  readonly file: string;
  readonly text: string;
  readonly tree: Node | undefined;
  private readonly lineStarts: number[];

  constructor(file: string, text: string, tree: Node | undefined) {
    this.file = file;
    this.text = text;
    this.tree = tree;
    this.lineStarts = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  position(offset: number): { line: number; column: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.lineStarts[lo]! + 1 };
  }

  /** Where the value at `path` is, or the nearest existing parent. */
  locate(path: readonly PropertyKey[]): { line: number; column: number } | undefined {
    if (!this.tree) return undefined;
    const segments = path.filter((s): s is string | number => typeof s !== "symbol");
    for (let n = segments.length; n >= 0; n--) {
      const node = findNodeAtLocation(this.tree, segments.slice(0, n));
      if (node) {
        // For a property value, point at its key: that is where an editor's cursor should go.
        const at = node.parent?.type === "property" ? node.parent.offset : node.offset;
        return this.position(at);
      }
    }
    return undefined;
  }

  problem(path: readonly PropertyKey[], message: string): ConfigProblem {
    return { file: this.file, path: formatPath(path), ...this.locate(path), message };
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** Shows a found value compactly; `${ENV}` references are shown as written, never resolved. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value instanceof Hidden) return String(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") return "an object";
  const shown = JSON.stringify(value);
  return `${typeof value} ${shown.length > 60 ? `${shown.slice(0, 57)}..."` : shown}`;
}

export function displayPath(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  return rel.startsWith("..") || rel === "" ? file : rel;
}

/** Reads and parses a JSON file; syntax errors become problems with line and column. */
export function readJsonSource(file: string, shownAs = displayPath(file)): JsonSource {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      {
        file: shownAs,
        path: "",
        message:
          code === "ENOENT"
            ? "file not found (create it, or pass --config with the right path)"
            : `cannot read file: ${code ?? String(err)}`,
      },
    ]);
  }
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: false, disallowComments: true });
  const source = new JsonSource(shownAs, text, tree);
  if (errors.length > 0 || tree === undefined) {
    throw new ConfigError(
      (errors.length > 0 ? errors : [{ error: 0, offset: 0, length: 0 } as unknown as ParseError])
        .slice(0, 5)
        .map((e) => ({
          file: shownAs,
          path: "",
          ...source.position(e.offset),
          message: `malformed JSON: ${errors.length > 0 ? printParseErrorCode(e.error) : "empty file"}`,
        })),
    );
  }
  return source;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${NAME}` (or `${NAME:-default}`) in every string value with the environment
 * variable's value. A reference to an unset variable with no default is a problem naming it.
 */
export function substituteEnv(
  source: JsonSource,
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: ConfigProblem[],
  path: (string | number)[] = [],
): unknown {
  if (typeof value === "string") {
    if (!value.includes("${")) return value;
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== "") return v;
      if (fallback !== undefined) return fallback;
      problems.push(
        source.problem(path, `environment variable ${name} is not set (export ${name}=... before starting)`),
      );
      return "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(source, v, env, problems, [...path, i]));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = substituteEnv(source, v, env, problems, [...path, k]);
    return out;
  }
  return value;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** Fields whose values may carry credentials: an error names what is wrong, never the value. */
const SECRET_KEY = /url|uri|dsn|password|passphrase|secret|token|key|credential|auth/i;

class Hidden {
  toString(): string {
    return "a value (hidden: this field may hold a credential)";
  }
}

/** Turns zod issues into problems that say what was expected and what was found. */
export function zodProblems(source: JsonSource, raw: unknown, error: z.ZodError): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const last = issue.path[issue.path.length - 1];
    const rawFound = valueAt(raw, issue.path);
    const found =
      typeof last === "string" &&
      SECRET_KEY.test(last) &&
      typeof rawFound === "string" &&
      !/^\$\{[^}]*\}$/.test(rawFound)
        ? new Hidden()
        : rawFound;
    switch (issue.code) {
      case "unrecognized_keys":
        for (const key of issue.keys) {
          problems.push(
            source.problem(
              [...issue.path, key],
              `unknown key "${key}" (remove it, or check its spelling against mcp.config.schema.json / docs/configuration.md)`,
            ),
          );
        }
        break;
      case "invalid_type":
        problems.push(
          source.problem(
            issue.path,
            found === undefined
              ? `required ${issue.expected} is missing`
              : `expected ${issue.expected}, found ${describeValue(found)}`,
          ),
        );
        break;
      case "invalid_union": {
        const note = issue.message && issue.message !== "Invalid input" ? ` (${issue.message})` : "";
        problems.push(
          source.problem(
            issue.path,
            `value does not match any allowed form${note}, found ${describeValue(found)}`,
          ),
        );
        break;
      }
      default: {
        const msg = issue.message.replace(/^Invalid input: /, "");
        problems.push(source.problem(issue.path, `${msg}; found ${describeValue(found)}`));
      }
    }
  }
  return problems;
}

/** Reads, substitutes `${ENV}` references and validates one file. Throws ConfigError. */
export function loadJsonFile<S extends z.ZodType>(
  file: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  shownAs?: string,
): { value: z.output<S>; source: JsonSource; raw: unknown } {
  const source = readJsonSource(file, shownAs);
  const raw: unknown = JSON.parse(source.text);
  const problems: ConfigProblem[] = [];
  const substituted = substituteEnv(source, raw, env, problems);
  const parsed = schema.safeParse(substituted);
  if (!parsed.success) problems.push(...zodProblems(source, raw, parsed.error));
  if (problems.length > 0) throw new ConfigError(problems);
  return { value: parsed.data as z.output<S>, source, raw };
}
