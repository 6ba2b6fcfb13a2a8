import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule, { type FormatsPlugin } from "ajv-formats";
import { GatewayError, type JsonSchema } from "../core/index.js";

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats =
  (addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  (addFormatsModule as unknown as FormatsPlugin);

const ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: false, coerceTypes: false });
addFormats(ajv);

/** Compiled validators, per schema object. Tools are compiled on first call, not at startup. */
const cache = new WeakMap<object, ValidateFunction>();

function compile(schema: JsonSchema): ValidateFunction {
  let fn = cache.get(schema);
  if (!fn) {
    // Draft-07 schemas from OpenAPI/WSDL carry their own $schema; ajv 2020 reads them fine without it.
    const { $schema: _ignored, ...rest } = schema;
    try {
      fn = ajv.compile(rest);
    } catch (err) {
      throw new GatewayError("INTERNAL", "the tool's input schema cannot be compiled", { cause: err });
    }
    cache.set(schema, fn);
  }
  return fn;
}

function describe(e: ErrorObject): string {
  const field = e.instancePath === "" ? "(arguments)" : e.instancePath.slice(1).replaceAll("/", ".");
  switch (e.keyword) {
    case "required":
      return `${field === "(arguments)" ? "" : `${field}.`}${String(e.params.missingProperty)}: is required`;
    case "additionalProperties":
      return `${field === "(arguments)" ? "" : `${field}.`}${String(e.params.additionalProperty)}: is not an accepted argument`;
    case "enum":
      return `${field}: must be one of ${JSON.stringify(e.params.allowedValues)}`;
    default:
      return `${field}: ${e.message ?? "is invalid"}`;
  }
}

/**
 * Validates arguments against a JSON Schema. Every violation is listed by field, so an agent can
 * fix them all in one retry.
 */
export function validateArguments(schema: JsonSchema, args: unknown, toolName: string): void {
  const validate = compile(schema);
  if (validate(args)) return;
  const violations = (validate.errors ?? []).map(describe);
  const unique = [...new Set(violations)];
  throw new GatewayError("INVALID_ARGUMENTS", `invalid arguments for ${toolName}: ${unique.join("; ")}`, {
    details: { violations: unique },
  });
}
