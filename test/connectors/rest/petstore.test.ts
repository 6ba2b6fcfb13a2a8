import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RestConnector } from "../../../src/connectors/rest/index.js";
import { TOOL_NAME_PATTERN } from "../../../src/core/index.js";
import { connectorContract } from "../../helpers/connector-contract.js";
import { call, makeConnector, sendJson, startServer, type TestServer } from "./helpers.js";
import { fixture } from "../../helpers/fixtures.js";

const PETSTORE = fixture("petstore-openapi-3.0.yaml");
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const pet = { id: 10, name: "doggie", photoUrls: ["https://example.test/d.jpg"], status: "available" };

function petstoreBackend() {
  return startServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/api/v3/pet/10") return sendJson(res, 200, pet);
    if (req.method === "GET" && path?.startsWith("/api/v3/pet/find")) return sendJson(res, 200, [pet]);
    if (req.method === "GET" && path === "/api/v3/store/inventory")
      return sendJson(res, 200, { available: 3 });
    if (req.method === "GET" && path === "/api/v3/user/login") {
      res.writeHead(200, { "content-type": "text/plain" }).end("logged in user session:123");
      return;
    }
    if (req.method === "DELETE") {
      res.writeHead(200).end();
      return;
    }
    if (path === "/api/v3/pet/10/uploadImage")
      return sendJson(res, 200, { code: 200, type: "ok", message: "stored" });
    if (path === "/api/v3/user/alice") {
      res.writeHead(200).end();
      return;
    }
    return sendJson(res, 200, pet);
  });
}

describe("rest connector: the Petstore fixture (OpenAPI 3.0.4)", () => {
  let server: TestServer;
  let connector: RestConnector;

  beforeAll(async () => {
    server = await petstoreBackend();
    connector = await makeConnector({ name: "pets", spec: PETSTORE, baseUrl: `${server.url}/api/v3` });
  });
  afterAll(async () => {
    await connector.close();
    await server.close();
  });

  it("turns all 19 operations into tools whose schemas compile as the gateway compiles them", () => {
    const tools = connector.tools();
    expect(tools).toHaveLength(19);
    const ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: true });
    addFormats(ajv);
    for (const tool of tools) {
      expect(tool.name).toMatch(TOOL_NAME_PATTERN);
      expect(tool.name.startsWith("pets__")).toBe(true);
      expect(() => ajv.compile(tool.inputSchema)).not.toThrow();
      if (tool.outputSchema) {
        expect(tool.outputSchema.type).toBe("object");
        expect(() => ajv.compile(tool.outputSchema!)).not.toThrow();
      }
      expect(JSON.stringify(tool.inputSchema)).not.toContain("$ref");
    }
    expect(tools.map((t) => t.operation)).toContain("uploadFile");
  });

  it("keeps integers, required, enums, formats and defaults, and sets annotations from the method", () => {
    const byStatus = connector.tools().find((t) => t.name === "pets__findPetsByStatus")!;
    expect(byStatus.inputSchema.properties!.status).toMatchObject({
      type: "string",
      enum: ["available", "pending", "sold"],
      default: "available",
    });
    expect(byStatus.annotations).toMatchObject({
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: true,
    });
    const getPet = connector.tools().find((t) => t.name === "pets__getPetById")!;
    expect(getPet.inputSchema.properties!.petId).toMatchObject({ type: "integer", format: "int64" });
    expect(getPet.inputSchema.required).toEqual(["petId"]);
    expect(getPet.outputSchema!.required).toEqual(["name", "photoUrls"]);
    const del = connector.tools().find((t) => t.name === "pets__deletePet")!;
    expect(del.annotations).toMatchObject({
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
    });
    const add = connector.tools().find((t) => t.name === "pets__addPet")!;
    expect(add.annotations).toMatchObject({
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
    });
    expect(add.inputSchema.required).toEqual(["body"]);
    expect(add.description).toContain("Add a new pet to the store");
  });

  it("GET with a path parameter reaches the right path and returns the pet as structured content", async () => {
    const result = await call(connector, "pets__getPetById", { petId: 10 });
    expect(result.structuredContent).toEqual(pet);
    const req = server.requests.at(-1)!;
    expect(req.method).toBe("GET");
    expect(req.url).toBe("/api/v3/pet/10");
  });

  it("wraps an array response as { result } (MCP structured content must be an object)", async () => {
    const result = await call(connector, "pets__findPetsByStatus", { status: "sold" });
    expect(result.structuredContent).toEqual({ result: [pet] });
    expect(server.requests.at(-1)!.url).toBe("/api/v3/pet/findByStatus?status=sold");
  });

  it("serialises an exploded array query parameter as repeated keys", async () => {
    await call(connector, "pets__findPetsByTags", { tags: ["a b", "c&d"] });
    expect(server.requests.at(-1)!.url).toBe("/api/v3/pet/findByTags?tags=a%20b&tags=c%26d");
  });

  it("POSTs the JSON body", async () => {
    await call(connector, "pets__addPet", { body: { name: "rex", photoUrls: [] } });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe("POST");
    expect(req.url).toBe("/api/v3/pet");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(req.body.toString())).toEqual({ name: "rex", photoUrls: [] });
  });

  it("PUTs a body next to a path parameter", async () => {
    await call(connector, "pets__updateUser", {
      username: "alice",
      body: { username: "alice", email: "a@x.test" },
    });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe("PUT");
    expect(req.url).toBe("/api/v3/user/alice");
    expect(JSON.parse(req.body.toString())).toEqual({ username: "alice", email: "a@x.test" });
  });

  it("sends query parameters next to path parameters", async () => {
    await call(connector, "pets__updatePetWithForm", { petId: 10, name: "max", status: "sold" });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe("POST");
    expect(req.url).toBe("/api/v3/pet/10?name=max&status=sold");
  });

  it("sends header parameters on DELETE", async () => {
    const result = await call(connector, "pets__deletePet", { petId: 10, api_key: "k-123" });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe("DELETE");
    expect(req.url).toBe("/api/v3/pet/10");
    expect(req.headers.api_key).toBe("k-123");
    expect(result.text).toBe("HTTP 200 (no content)");
  });

  it("uploads octet-stream bodies given as base64", async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    await call(connector, "pets__uploadFile", {
      petId: 10,
      additionalMetadata: "m",
      body: bytes.toString("base64"),
    });
    const req = server.requests.at(-1)!;
    expect(req.url).toBe("/api/v3/pet/10/uploadImage?additionalMetadata=m");
    expect(req.headers["content-type"]).toBe("application/octet-stream");
    expect(req.body.equals(bytes)).toBe(true);
  });

  it("returns non-JSON text as text (and as { result } where the spec declares a string)", async () => {
    const result = await call(connector, "pets__loginUser", { username: "u", password: "p" });
    expect(result.text).toBe("logged in user session:123");
    expect(result.structuredContent).toEqual({ result: "logged in user session:123" });
    expect(server.requests.at(-1)!.url).toBe("/api/v3/user/login?username=u&password=p");
  });
});

let contractServer: TestServer | undefined;
connectorContract(
  "rest",
  async () => {
    contractServer = await petstoreBackend();
    const connector = await makeConnector({
      name: "pets",
      spec: PETSTORE,
      baseUrl: `${contractServer.url}/api/v3`,
    });
    return { connector, okCall: { tool: "pets__getPetById", arguments: { petId: 10 } } };
  },
  async () => {
    await contractServer?.close();
  },
);
