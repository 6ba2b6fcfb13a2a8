/**
 * Generates a large, realistic OpenAPI 3.0 document: `operations` operations over resources that
 * share components (pagination, problem details, nested and recursive schemas), so the loader is
 * measured on the shape enterprise specs have. Reused by the benchmark (bench/), keep it pure.
 */
export function generateLargeSpec(operations = 500): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const resources = Math.ceil(operations / 5);
  let made = 0;
  for (let r = 0; r < resources && made < operations; r++) {
    const name = `resource${r}`;
    const collection: Record<string, unknown> = {};
    const item: Record<string, unknown> = {
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
    };
    const ops: [Record<string, unknown>, string, Record<string, unknown>][] = [
      [
        collection,
        "get",
        {
          operationId: `list${cap(name)}`,
          tags: [`group${r % 10}`],
          summary: `List ${name} items`,
          parameters: [
            { $ref: "#/components/parameters/Limit" },
            { $ref: "#/components/parameters/Cursor" },
            { name: "status", in: "query", schema: { type: "string", enum: ["active", "archived"] } },
            { name: "X-Request-Id", in: "header", schema: { type: "string", format: "uuid" } },
          ],
          responses: {
            "200": json({
              type: "object",
              properties: {
                items: { type: "array", items: { $ref: "#/components/schemas/Entity" } },
                next: { type: "string", nullable: true },
              },
            }),
            default: { $ref: "#/components/responses/Problem" },
          },
        },
      ],
      [
        collection,
        "post",
        {
          operationId: `create${cap(name)}`,
          tags: [`group${r % 10}`],
          requestBody: {
            required: true,
            content: { "application/json": { schema: { $ref: "#/components/schemas/EntityInput" } } },
          },
          responses: {
            "201": json({ $ref: "#/components/schemas/Entity" }),
            default: { $ref: "#/components/responses/Problem" },
          },
        },
      ],
      [
        item,
        "get",
        {
          operationId: `get${cap(name)}`,
          responses: { "200": json({ $ref: "#/components/schemas/Entity" }) },
        },
      ],
      [
        item,
        "put",
        {
          operationId: `replace${cap(name)}`,
          requestBody: {
            content: { "application/json": { schema: { $ref: "#/components/schemas/EntityInput" } } },
          },
          responses: { "200": json({ $ref: "#/components/schemas/Entity" }) },
        },
      ],
      [
        item,
        "delete",
        { operationId: `delete${cap(name)}`, responses: { "204": { description: "deleted" } } },
      ],
    ];
    for (const [target, method, op] of ops) {
      if (made >= operations) break;
      target[method] = op;
      made++;
    }
    if (Object.keys(collection).length > 0) paths[`/${name}`] = collection;
    if (Object.keys(item).length > 1) paths[`/${name}/{id}`] = item;
  }
  return {
    openapi: "3.0.3",
    info: { title: `Generated API with ${operations} operations`, version: "1.0.0" },
    servers: [{ url: "http://127.0.0.1:1/api" }],
    paths,
    components: {
      parameters: {
        Limit: {
          name: "limit",
          in: "query",
          schema: { type: "integer", minimum: 1, maximum: 500, default: 50 },
        },
        Cursor: { name: "cursor", in: "query", schema: { type: "string" } },
      },
      responses: {
        Problem: {
          description: "problem",
          content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
        },
      },
      schemas: {
        Problem: {
          type: "object",
          properties: { title: { type: "string" }, status: { type: "integer" }, detail: { type: "string" } },
        },
        Money: { type: "string", pattern: "^-?\\d+(\\.\\d+)?$" },
        Address: {
          type: "object",
          properties: {
            street: { type: "string" },
            city: { type: "string" },
            country: { type: "string", minLength: 2, maxLength: 2 },
          },
        },
        Category: {
          type: "object",
          properties: { name: { type: "string" }, parent: { $ref: "#/components/schemas/Category" } },
        },
        EntityInput: {
          type: "object",
          required: ["name"],
          properties: {
            name: { type: "string", maxLength: 200 },
            amount: { $ref: "#/components/schemas/Money" },
            address: { $ref: "#/components/schemas/Address" },
            tags: { type: "array", items: { type: "string" } },
          },
        },
        Entity: {
          allOf: [
            { $ref: "#/components/schemas/EntityInput" },
            {
              type: "object",
              required: ["id"],
              properties: {
                id: { type: "string", readOnly: true },
                createdAt: { type: "string", format: "date-time" },
                category: { $ref: "#/components/schemas/Category" },
              },
            },
          ],
        },
      },
    },
  };
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function json(schema: unknown) {
  return { description: "ok", content: { "application/json": { schema } } };
}
