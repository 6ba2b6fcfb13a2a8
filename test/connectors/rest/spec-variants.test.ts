import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RestConnector } from "../../../src/connectors/rest/index.js";
import { TOOL_NAME_PATTERN, type ToolDefinition } from "../../../src/core/index.js";
import {
  call,
  failure,
  makeConnector,
  oas30,
  okJson,
  sendJson,
  startServer,
  tempDir,
  writeSpec,
  type TestServer,
} from "./helpers.js";

const files = tempDir("variants");
let server: TestServer;
beforeAll(async () => {
  server = await startServer((req, res) => {
    if (req.url?.startsWith("/v2/pets")) return sendJson(res, 200, [{ id: 1, name: "a" }]);
    return sendJson(res, 200, { ok: true });
  });
});
afterAll(async () => {
  await server.close();
  files.cleanup();
});

const tool = (c: RestConnector, name: string): ToolDefinition => {
  const t = c.tools().find((x) => x.name === name);
  if (!t)
    throw new Error(
      `no ${name} in ${c
        .tools()
        .map((x) => x.name)
        .join(", ")}`,
    );
  return t;
};

describe("Swagger 2.0", () => {
  const swagger = {
    swagger: "2.0",
    info: { title: "pets v2", version: "1" },
    host: "pets.example.test",
    basePath: "/v2",
    schemes: ["https"],
    consumes: ["application/json"],
    produces: ["application/json"],
    paths: {
      "/pets": {
        get: {
          operationId: "listPets",
          parameters: [
            { name: "limit", in: "query", type: "integer", format: "int32", minimum: 1, default: 10 },
            {
              name: "tags",
              in: "query",
              type: "array",
              items: { type: "string" },
              collectionFormat: "pipes",
            },
            {
              name: "ids",
              in: "query",
              type: "array",
              items: { type: "integer" },
              collectionFormat: "multi",
            },
          ],
          responses: {
            "200": { description: "ok", schema: { type: "array", items: { $ref: "#/definitions/Pet" } } },
          },
        },
        post: {
          operationId: "createPet",
          parameters: [{ name: "pet", in: "body", required: true, schema: { $ref: "#/definitions/Pet" } }],
          responses: { "201": { description: "created", schema: { $ref: "#/definitions/Pet" } } },
        },
      },
      "/pets/{petId}/photo": {
        post: {
          operationId: "uploadPhoto",
          consumes: ["multipart/form-data"],
          parameters: [
            { name: "petId", in: "path", required: true, type: "integer" },
            { name: "caption", in: "formData", type: "string" },
            { name: "file", in: "formData", type: "file", required: true },
          ],
          responses: { "200": { description: "ok" } },
        },
      },
      "/pets/{petId}/name": {
        put: {
          operationId: "renamePet",
          consumes: ["application/x-www-form-urlencoded"],
          parameters: [
            { name: "petId", in: "path", required: true, type: "integer" },
            { name: "name", in: "formData", type: "string", required: true },
          ],
          responses: { "204": { description: "renamed" } },
        },
      },
    },
    definitions: {
      Pet: {
        type: "object",
        required: ["name"],
        properties: {
          id: { type: "integer", format: "int64", readOnly: true },
          name: { type: "string", "x-nullable": true },
          weight: { type: "number", minimum: 0, exclusiveMinimum: true },
        },
      },
    },
  };
  let c: RestConnector;
  beforeAll(async () => {
    c = await makeConnector({
      name: "v2",
      spec: writeSpec(files.dir, "swagger.json", swagger),
      baseUrl: `${server.url}/v2`,
    });
  });
  afterAll(() => c.close());

  it("derives the base URL from host, basePath and schemes when none is configured", async () => {
    const d = await makeConnector({ name: "v2b", spec: writeSpec(files.dir, "swagger-b.json", swagger) });
    expect(tool(d, "v2b__listPets").upstream).toBe("GET https://pets.example.test/v2/pets");
    await d.close();
  });

  it("maps parameter-level types, body parameters and form data", () => {
    const list = tool(c, "v2__listPets");
    expect(list.inputSchema.properties!.limit).toEqual({
      type: "integer",
      format: "int32",
      minimum: 1,
      default: 10,
    });
    expect(list.outputSchema!.properties!.result).toMatchObject({ type: "array" });
    const create = tool(c, "v2__createPet");
    // readOnly properties are not asked for; x-nullable and boolean exclusiveMinimum are translated.
    expect(create.inputSchema.properties!.body).toEqual({
      type: "object",
      required: ["name"],
      properties: { name: { type: ["string", "null"] }, weight: { type: "number", exclusiveMinimum: 0 } },
    });
    expect(create.inputSchema.required).toEqual(["body"]);
    const upload = tool(c, "v2__uploadPhoto");
    expect(upload.inputSchema.properties!.body).toMatchObject({
      properties: { caption: { type: "string" }, file: { type: "string", contentEncoding: "base64" } },
      required: ["file"],
    });
  });

  it("serialises collectionFormat pipes and multi", async () => {
    await call(c, "v2__listPets", { limit: 2, tags: ["a", "b"], ids: [1, 2] });
    expect(server.requests.at(-1)!.url).toBe("/v2/pets?limit=2&tags=a%7Cb&ids=1&ids=2");
  });

  it("sends form-urlencoded and multipart bodies", async () => {
    await call(c, "v2__renamePet", { petId: 3, body: { name: "Rex Jr" } });
    let req = server.requests.at(-1)!;
    expect(req.method).toBe("PUT");
    expect(req.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(req.body.toString()).toBe("name=Rex+Jr");

    await call(c, "v2__uploadPhoto", {
      petId: 3,
      body: { caption: "hi", file: Buffer.from("PNGDATA").toString("base64") },
    });
    req = server.requests.at(-1)!;
    expect(req.url).toBe("/v2/pets/3/photo");
    expect(req.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    const text = req.body.toString();
    expect(text).toContain('name="caption"');
    expect(text).toContain("PNGDATA");
  });
});

describe("OpenAPI 3.1", () => {
  it("keeps JSON Schema 2020-12 constructs and type unions", async () => {
    const doc = {
      openapi: "3.1.0",
      info: { title: "t", version: "1" },
      servers: [
        {
          url: "{scheme}://127.0.0.1:{port}/v1",
          variables: { scheme: { default: "http" }, port: { default: "9" } },
        },
      ],
      paths: {
        "/things/{id}": {
          get: {
            operationId: "getThing",
            parameters: [
              { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } },
            ],
            responses: okJson({
              type: "object",
              properties: {
                label: { type: ["string", "null"] },
                pair: { type: "array", prefixItems: [{ type: "integer" }, { type: "string" }] },
                kind: { const: "thing" },
              },
              examples: [{ label: "x" }],
            }),
          },
        },
      },
    };
    const c = await makeConnector({ name: "v31", spec: writeSpec(files.dir, "v31.json", doc) });
    const t = tool(c, "v31__getThing");
    expect(t.upstream).toBe("GET http://127.0.0.1:9/v1/things/{id}");
    expect(t.outputSchema!.properties).toMatchObject({
      label: { type: ["string", "null"] },
      pair: { prefixItems: [{ type: "integer" }, { type: "string" }] },
      kind: { const: "thing" },
    });
    expect(t.inputSchema.properties!.id).toEqual({ type: "string", format: "uuid" });
    expect(() => new Ajv2020({ strict: false }).compile(t.outputSchema!)).not.toThrow();
    await c.close();
  });
});

describe("collisions", () => {
  const doc = oas30({
    "/a/{id}": {
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
      get: {
        operationId: "list.items",
        parameters: [
          { name: "id", in: "query", schema: { type: "integer" } },
          { name: "body", in: "header", schema: { type: "string" } },
        ],
        responses: okJson(),
      },
      post: {
        operationId: "list_items",
        parameters: [{ name: "body", in: "query", schema: { type: "string" } }],
        requestBody: { required: true, content: { "application/json": { schema: { type: "object" } } } },
        responses: okJson(),
      },
    },
    "/no-id": { get: { responses: okJson() }, delete: { responses: okJson() } },
    [`/${"very-long-segment/".repeat(6)}x`]: {
      get: { operationId: `${"averyveryverylongoperationname".repeat(3)}A`, responses: okJson() },
      put: { operationId: `${"averyveryverylongoperationname".repeat(3)}B`, responses: okJson() },
    },
  });
  let c: RestConnector;
  beforeAll(async () => {
    c = await makeConnector({
      name: "col",
      spec: writeSpec(files.dir, "col.json", doc),
      baseUrl: `${server.url}/api`,
    });
  });
  afterAll(() => c.close());

  it("gives colliding operations distinct names with a suffix that depends only on method and path", async () => {
    const names = c.tools().map((t) => t.name);
    for (const n of names) expect(n).toMatch(TOOL_NAME_PATTERN);
    expect(new Set(names).size).toBe(names.length);
    const sanitizedCollisions = names.filter((n) => n.startsWith("col__list_items_"));
    expect(sanitizedCollisions).toHaveLength(2);
    // Reordering the spec does not change names.
    const reversed = { ...doc, paths: Object.fromEntries(Object.entries(doc.paths).reverse()) };
    const d = await makeConnector({
      name: "col",
      spec: writeSpec(files.dir, "col-rev.json", reversed),
      baseUrl: server.url,
    });
    expect(
      d
        .tools()
        .map((t) => t.name)
        .sort(),
    ).toEqual([...names].sort());
    await d.close();
  });

  it("falls back to method + path without an operationId", () => {
    expect(c.tools().map((t) => t.name)).toEqual(
      expect.arrayContaining(["col__get_no-id", "col__delete_no-id"]),
    );
    expect(c.tools().find((t) => t.name === "col__get_no-id")!.operation).toBe("GET /no-id");
  });

  it("caps long names at 64 characters, still distinct", () => {
    const long = c.tools().filter((t) => t.operation.startsWith("averyvery"));
    expect(long).toHaveLength(2);
    for (const t of long) expect(t.name.length).toBeLessThanOrEqual(64);
    expect(long[0]!.name).not.toBe(long[1]!.name);
  });

  it("namespaces parameters only where names collide across locations, and routes each to its place", async () => {
    const get = c.tools().find((t) => t.operation === "list.items")!;
    expect(Object.keys(get.inputSchema.properties!).sort()).toEqual(["body", "path_id", "query_id"]);
    expect(get.inputSchema.required).toEqual(["path_id"]);
    const post = c.tools().find((t) => t.operation === "list_items")!;
    expect(Object.keys(post.inputSchema.properties!).sort()).toEqual(["body", "id", "query_body"]);

    await call(c, get.name, { path_id: "p1", query_id: 7, body: "hdr" });
    let req = server.requests.at(-1)!;
    expect(req.url).toBe("/api/a/p1?id=7");
    expect(req.headers.body).toBe("hdr");
    await call(c, post.name, { id: "p2", query_body: "q", body: { x: 1 } });
    req = server.requests.at(-1)!;
    expect(req.url).toBe("/api/a/p2?body=q");
    expect(JSON.parse(req.body.toString())).toEqual({ x: 1 });
  });
});

describe("cycles", () => {
  it("loads recursive schemas and bounds them to finite, serialisable JSON Schema", async () => {
    const doc = oas30(
      {
        "/tree": {
          get: { operationId: "getTree", responses: okJson({ $ref: "#/components/schemas/Node" }) },
          post: {
            operationId: "postTree",
            requestBody: {
              content: { "application/json": { schema: { $ref: "#/components/schemas/Node" } } },
            },
            responses: okJson({ $ref: "#/components/schemas/Person" }),
          },
        },
      },
      {
        schemas: {
          Node: {
            type: "object",
            title: "Node",
            properties: {
              value: { type: "integer" },
              children: { type: "array", items: { $ref: "#/components/schemas/Node" } },
            },
          },
          Person: {
            type: "object",
            properties: { name: { type: "string" }, employer: { $ref: "#/components/schemas/Company" } },
          },
          Company: {
            type: "object",
            properties: { name: { type: "string" }, ceo: { $ref: "#/components/schemas/Person" } },
          },
        },
      },
    );
    const c = await makeConnector({
      name: "cyc",
      spec: writeSpec(files.dir, "cyc.json", doc),
      baseUrl: server.url,
    });
    const get = tool(c, "cyc__getTree");
    const text = JSON.stringify(get.outputSchema);
    expect(text.length).toBeLessThan(5_000);
    expect(get.outputSchema!.properties!.children).toMatchObject({
      type: "array",
      items: { type: "object", description: expect.stringContaining("Recursive structure (Node)") },
    });
    const post = tool(c, "cyc__postTree");
    expect(JSON.stringify(post.inputSchema).length).toBeLessThan(5_000);
    expect(JSON.stringify(post.outputSchema).length).toBeLessThan(5_000);
    expect(() => new Ajv2020({ strict: false }).compile(post.outputSchema!)).not.toThrow();
    await c.close();
  });
});

describe("selection", () => {
  const doc = oas30({
    "/orders": {
      get: { operationId: "listOrders", tags: ["orders"], responses: okJson() },
      post: { operationId: "createOrder", tags: ["orders"], responses: okJson() },
    },
    "/orders/{id}": {
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
      delete: { operationId: "deleteOrder", tags: ["orders"], responses: okJson() },
    },
    "/admin/reset": {
      post: { operationId: "resetAll", tags: ["admin"], "x-mcp": false, responses: okJson() },
    },
    "/admin/status": {
      get: { operationId: "adminStatus", tags: ["admin"], "x-mcp": true, responses: okJson() },
    },
    "/reports/daily": { get: { operationId: "dailyReport", tags: ["reports"], responses: okJson() } },
  });
  const ops = async (extra: Record<string, unknown>) => {
    const c = await makeConnector({ name: "sel", spec: writeSpec(files.dir, "sel.json", doc), ...extra });
    const result = c
      .tools()
      .map((t) => t.operation)
      .sort();
    await c.close();
    return result;
  };

  it("x-mcp: false hides an operation; everything else is a tool by default", async () => {
    expect(await ops({})).toEqual(["adminStatus", "createOrder", "dailyReport", "deleteOrder", "listOrders"]);
  });

  it("include by tag keeps x-mcp: true operations", async () => {
    expect(await ops({ include: { tags: ["orders"] } })).toEqual([
      "adminStatus",
      "createOrder",
      "deleteOrder",
      "listOrders",
    ]);
  });

  it("include fields combine with AND; exclude wins over include and x-mcp: true", async () => {
    expect(
      await ops({
        include: { tags: ["orders"], methods: ["GET"] },
        exclude: { operationIds: ["adminStatus"] },
      }),
    ).toEqual(["listOrders"]);
  });

  it("path patterns: * is one segment, ** any depth", async () => {
    expect(await ops({ include: { paths: ["/orders/*"] }, exclude: { tags: ["admin"] } })).toEqual([
      "deleteOrder",
    ]);
    expect(await ops({ include: { paths: ["/reports/**"] }, exclude: { tags: ["admin"] } })).toEqual([
      "dailyReport",
    ]);
    expect(await ops({ exclude: { methods: ["POST", "DELETE"] } })).toEqual([
      "adminStatus",
      "dailyReport",
      "listOrders",
    ]);
  });

  it("an empty selection is a load error, not a silent connector without tools", async () => {
    const err = await failure(ops({ include: { operationIds: ["nope"] }, exclude: { tags: ["admin"] } }));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("no operation");
  });

  it("a tools override naming no operation is a load error naming it", async () => {
    const err = await failure(ops({ tools: { lisOrders: { maxResultBytes: 10 } } }));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("tools.lisOrders names no operation");
  });
});

describe("broken specs", () => {
  it("names the spec and the location of a schema violation", async () => {
    const bad = oas30({ "/x": { get: { operationId: "x" } } });
    const file = writeSpec(files.dir, "broken.json", bad);
    const err = await failure(makeConnector({ name: "bad", spec: file }));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain('connector "bad" (rest): invalid OpenAPI spec');
    expect(err.message).toContain("broken.json");
    expect(err.message).toContain("#/paths/~1x/get");
  });

  it("names the line of a YAML syntax error", async () => {
    const file = writeSpec(
      files.dir,
      "broken.yaml",
      "openapi: 3.0.3\ninfo:\n  title: t\n   version: 1\npaths: {}\n",
    );
    const err = await failure(makeConnector({ name: "bad", spec: file }));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("broken.yaml");
    expect(err.message).toMatch(/\(4:\d+\)|line 4/);
  });

  it("a missing spec file is named as such, relative to the connectors directory", async () => {
    const err = await failure(makeConnector({ name: "bad", spec: "nope/missing.yaml" }, files.dir));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toContain("missing.yaml");
    expect(err.message).toContain("file not found");
  });

  it("a relative server URL without baseUrl is a load error that says what to set", async () => {
    const doc = {
      ...oas30({ "/x": { get: { operationId: "x", responses: okJson() } } }),
      servers: [{ url: "/api" }],
    };
    const err = await failure(makeConnector({ name: "rel", spec: writeSpec(files.dir, "rel.json", doc) }));
    expect(err.message).toContain('set "baseUrl"');
  });

  it("the config schema refuses unknown keys and bad values", async () => {
    await expect(makeConnector({ name: "x", spec: "a.yaml", baseUrl: "ftp://h" })).rejects.toThrow(/http/);
    await expect(makeConnector({ name: "x", spec: "a.yaml", retries: 3 })).rejects.toThrow(/retries/);
  });

  it("loads a spec served over HTTP, resolving a relative server URL against it", async () => {
    const doc = {
      ...oas30({ "/x": { get: { operationId: "x", responses: okJson() } } }),
      servers: [{ url: "/api" }],
    };
    const specServer = await startServer((_req, res) => sendJson(res, 200, doc));
    const c = await makeConnector({ name: "remote", spec: `${specServer.url}/openapi.json` });
    expect(c.tools()[0]!.upstream).toBe(`GET ${specServer.url}/api/x`);
    await c.close();
    await specServer.close();
  });
});
