import { Ajv, type ErrorObject } from "ajv";
import addFormats from "ajv-formats";

/**
 * One Ajv per purpose. XML and fixed-width replies carry only text, so their validator coerces
 * "42" to 42 where the reply schema says number; JSON replies are validated as they came.
 */
export function createAjv(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes, useDefaults: false });
  addFormats.default(ajv);
  return ajv;
}

export interface Violation {
  readonly path: string;
  readonly message: string;
}

/** Ajv errors as "what differed", short enough for an agent and free of the reply's data. */
export function violations(errors: readonly ErrorObject[] | null | undefined, limit = 10): Violation[] {
  return (errors ?? []).slice(0, limit).map((e) => {
    let path = e.instancePath === "" ? "/" : e.instancePath;
    let message = e.message ?? "is invalid";
    if (e.keyword === "required" && typeof e.params.missingProperty === "string") {
      path = `${e.instancePath}/${e.params.missingProperty}`;
      message = "is required but missing";
    } else if (e.keyword === "additionalProperties" && typeof e.params.additionalProperty === "string") {
      path = `${e.instancePath}/${e.params.additionalProperty}`;
      message = "is not allowed by the schema";
    } else if (e.keyword === "enum" && Array.isArray(e.params.allowedValues)) {
      message = `must be one of ${e.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    return { path, message };
  });
}

export function formatViolations(list: readonly Violation[]): string {
  return list.map((v) => `${v.path} ${v.message}`).join("; ");
}
