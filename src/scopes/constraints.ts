import type { JsonSchema } from "../core/index.js";
import { compareDecimal, formatDecimal, parseDecimal, significantScale, type Decimal } from "./decimal.js";
import type { ConstraintConfig } from "./manifest-schema.js";

/** One argument constraint, compiled once at load time. */
export interface CompiledConstraint {
  readonly arg: string;
  readonly config: ConstraintConfig;
  /** Why the value is refused, phrased for the agent; undefined when it passes. */
  check(value: unknown): string | undefined;
}

const MAX_ENUM_SHOWN = 20;

function typesOf(schema: JsonSchema): Set<string> | undefined {
  const t = schema.type;
  if (typeof t === "string") return new Set([t]);
  if (Array.isArray(t)) return new Set(t.filter((x): x is string => typeof x === "string"));
  return undefined;
}

function allows(types: Set<string> | undefined, ...wanted: string[]): boolean {
  return types === undefined || wanted.some((w) => types.has(w));
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "number" && typeof b === "number" && a === b);
}

function showList(values: readonly unknown[]): string {
  const shown = values.slice(0, MAX_ENUM_SHOWN).map((v) => JSON.stringify(v));
  return shown.join(", ") + (values.length > MAX_ENUM_SHOWN ? `, … (${values.length} in all)` : "");
}

/**
 * Checks a constraint against the tool's own property schema (load time) and compiles it.
 * Returns the problems found, phrased to name the constraint's key.
 */
export function compileConstraint(
  arg: string,
  config: ConstraintConfig,
  property: JsonSchema,
): { constraint?: CompiledConstraint; problems: { key: string; message: string }[] } {
  const problems: { key: string; message: string }[] = [];
  const types = typesOf(property);
  const toolEnum = Array.isArray(property.enum) ? (property.enum as unknown[]) : undefined;

  if (config.enum) {
    config.enum.forEach((v) => {
      if (toolEnum && !toolEnum.some((t) => sameValue(t, v))) {
        problems.push({
          key: "enum",
          message: `${JSON.stringify(v)} is not one of the tool's values (${showList(toolEnum)})`,
        });
      } else if (
        !toolEnum &&
        !allows(
          types,
          typeof v === "number" ? "number" : typeof v,
          ...(Number.isInteger(v) ? ["integer"] : []),
        )
      ) {
        problems.push({
          key: "enum",
          message: `${JSON.stringify(v)} does not match the argument's type (${[...(types ?? [])].join("|")})`,
        });
      }
    });
  }
  if ((config.minimum !== undefined || config.maximum !== undefined) && !allows(types, "number", "integer")) {
    problems.push({
      key: config.minimum !== undefined ? "minimum" : "maximum",
      message: "minimum/maximum apply to number arguments; use money for decimal strings",
    });
  }
  if (config.minimum !== undefined && config.maximum !== undefined && config.minimum > config.maximum) {
    problems.push({
      key: "minimum",
      message: `minimum ${config.minimum} is greater than maximum ${config.maximum}`,
    });
  }
  let regex: RegExp | undefined;
  if (config.pattern !== undefined) {
    if (!allows(types, "string"))
      problems.push({ key: "pattern", message: "pattern applies to string arguments" });
    try {
      regex = new RegExp(config.pattern, "u");
    } catch (err) {
      problems.push({ key: "pattern", message: `invalid regular expression: ${(err as Error).message}` });
    }
  }
  if ((config.minLength !== undefined || config.maxLength !== undefined) && !allows(types, "string")) {
    problems.push({
      key: config.maxLength !== undefined ? "maxLength" : "minLength",
      message: "minLength/maxLength apply to string arguments",
    });
  }
  if (
    config.minLength !== undefined &&
    config.maxLength !== undefined &&
    config.minLength > config.maxLength
  ) {
    problems.push({
      key: "minLength",
      message: `minLength ${config.minLength} is greater than maxLength ${config.maxLength}`,
    });
  }
  if (config.maxItems !== undefined && !allows(types, "array")) {
    problems.push({ key: "maxItems", message: "maxItems applies to array arguments" });
  }
  let moneyMin: Decimal | undefined;
  let moneyMax: Decimal | undefined;
  if (config.money) {
    if (!allows(types, "string", "number", "integer")) {
      problems.push({ key: "money", message: "money applies to decimal-string or number arguments" });
    }
    moneyMin = config.money.min === undefined ? undefined : parseDecimal(config.money.min);
    moneyMax = config.money.max === undefined ? undefined : parseDecimal(config.money.max);
    if (moneyMin && moneyMax && compareDecimal(moneyMin, moneyMax) > 0) {
      problems.push({
        key: "money",
        message: `money.min ${config.money.min} is greater than money.max ${config.money.max}`,
      });
    }
  }
  if (problems.length > 0) return { problems };

  const checks: ((v: unknown) => string | undefined)[] = [];
  const name = JSON.stringify(arg);
  if (config.enum) {
    const allowed = config.enum;
    checks.push((v) =>
      allowed.some((a) => sameValue(a, v))
        ? undefined
        : `argument ${name} must be one of ${showList(allowed)}`,
    );
  }
  if (config.minimum !== undefined || config.maximum !== undefined) {
    const { minimum, maximum } = config;
    checks.push((v) => {
      if (typeof v !== "number" || !Number.isFinite(v)) return `argument ${name} must be a number`;
      if (minimum !== undefined && v < minimum) return `argument ${name} must be at least ${minimum}`;
      if (maximum !== undefined && v > maximum) return `argument ${name} must be at most ${maximum}`;
      return undefined;
    });
  }
  if (regex) {
    const re = regex;
    const source = config.pattern!;
    checks.push((v) => {
      if (typeof v !== "string") return `argument ${name} must be a string`;
      re.lastIndex = 0;
      return re.test(v) ? undefined : `argument ${name} must match the pattern ${JSON.stringify(source)}`;
    });
  }
  if (config.minLength !== undefined || config.maxLength !== undefined) {
    const { minLength, maxLength } = config;
    checks.push((v) => {
      if (typeof v !== "string") return `argument ${name} must be a string`;
      // Cheap bound before counting code points: a string longer in UTF-16 units may still fit.
      const n = maxLength !== undefined && v.length <= maxLength ? v.length : codePoints(v);
      if (maxLength !== undefined && n > maxLength)
        return `argument ${name} must be at most ${maxLength} characters`;
      if (minLength !== undefined && codePoints(v) < minLength)
        return `argument ${name} must be at least ${minLength} characters`;
      return undefined;
    });
  }
  if (config.maxItems !== undefined) {
    const maxItems = config.maxItems;
    checks.push((v) => {
      if (!Array.isArray(v)) return `argument ${name} must be an array`;
      return v.length > maxItems ? `argument ${name} must have at most ${maxItems} items` : undefined;
    });
  }
  if (config.money) {
    const { maxScale } = config.money;
    const [min, max] = [moneyMin, moneyMax];
    checks.push((v) => {
      const d = parseDecimal(v);
      if (!d) return `argument ${name} must be a decimal amount such as "12.34"`;
      if (maxScale !== undefined && significantScale(d) > maxScale) {
        return `argument ${name} must have at most ${maxScale} decimal places`;
      }
      if (min && compareDecimal(d, min) < 0) return `argument ${name} must be at least ${formatDecimal(min)}`;
      if (max && compareDecimal(d, max) > 0) return `argument ${name} must be at most ${formatDecimal(max)}`;
      return undefined;
    });
  }
  return {
    problems,
    constraint: {
      arg,
      config,
      check(value) {
        for (const c of checks) {
          const why = c(value);
          if (why) return why;
        }
        return undefined;
      },
    },
  };
}

function moneyNote(money: NonNullable<ConstraintConfig["money"]>): string {
  const parts: string[] = [];
  if (money.min !== undefined) parts.push(`at least ${money.min}`);
  if (money.max !== undefined) parts.push(`at most ${money.max}`);
  if (money.maxScale !== undefined) parts.push(`at most ${money.maxScale} decimal places`);
  return parts.length > 0 ? `Amount (exact decimal): ${parts.join(", ")}.` : "";
}

/**
 * The property schema an identity sees when one or more of its grants constrain the argument.
 * Several grants combine by union (widest bound, union of enums), so the visible schema is never
 * stricter than what the policy actually admits; the policy's own check stays authoritative.
 */
export function narrowProperty(property: JsonSchema, constraints: readonly ConstraintConfig[]): JsonSchema {
  if (constraints.length === 0) return property;
  const out: JsonSchema = { ...property };
  const all = <K extends keyof ConstraintConfig>(k: K): NonNullable<ConstraintConfig[K]>[] | undefined => {
    const vals = constraints.map((c) => c[k]);
    return vals.every((v) => v !== undefined) ? (vals as NonNullable<ConstraintConfig[K]>[]) : undefined;
  };
  const enums = all("enum");
  if (enums) {
    const union: (string | number | boolean)[] = [];
    for (const e of enums) for (const v of e) if (!union.some((u) => sameValue(u, v))) union.push(v);
    out.enum = union;
  }
  const narrowNum = (
    key: "minimum" | "maximum" | "minLength" | "maxLength" | "maxItems",
    widest: (a: number, b: number) => number,
    tighter: (a: number, b: number) => number,
  ) => {
    const vals = all(key) as number[] | undefined;
    if (!vals) return;
    const w = vals.reduce(widest);
    const own = property[key];
    out[key] = typeof own === "number" ? tighter(own, w) : w;
  };
  narrowNum("minimum", Math.min, Math.max);
  narrowNum("maximum", Math.max, Math.min);
  narrowNum("minLength", Math.min, Math.max);
  narrowNum("maxLength", Math.max, Math.min);
  narrowNum("maxItems", Math.max, Math.min);
  const patterns = all("pattern");
  if (patterns && patterns.every((p) => p === patterns[0])) {
    if (typeof property.pattern === "string" && property.pattern !== patterns[0]) {
      out.allOf = [...(Array.isArray(property.allOf) ? property.allOf : []), { pattern: patterns[0] }];
    } else {
      out.pattern = patterns[0];
    }
  }
  const money = constraints.length === 1 ? constraints[0]!.money : undefined;
  if (money) {
    const note = moneyNote(money);
    if (note)
      out.description = typeof property.description === "string" ? `${property.description} ${note}` : note;
  }
  return out;
}
