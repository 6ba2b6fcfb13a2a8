import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connector } from "../../../src/core/index.js";
import { soapFactory } from "../../../src/connectors/soap/index.js";
import { findTool } from "../../helpers/connector-contract.js";
import { testLogger } from "../../helpers/logger.js";
import { FIXTURES } from "./soap-server.js";

const MONEY = "^[+-]?(?:[0-9]+(?:\\.[0-9]{0,2})?|\\.[0-9]{1,2})$";

/**
 * catalog.wsdl pulls its types from an xsd:import (common.xsd, another namespace) and a
 * chameleon xsd:include (catalog-types.xsd); every schema below is asserted whole.
 */
describe("soap connector: XSD → JSON Schema (catalog.wsdl)", () => {
  let c: Connector;
  beforeAll(async () => {
    c = await soapFactory.create(
      soapFactory.configSchema.parse({ kind: "soap", name: "catalog", wsdl: "catalog.wsdl" }),
      {
        baseDir: FIXTURES,
        logger: testLogger,
      },
    );
  });
  afterAll(() => c.close());

  it("optional fields, arrays, enums, defaults, dates, decimals and documentation", () => {
    const tool = findTool(c, "catalog__FindProducts");
    expect(tool.description).toBe("Searches the product catalog.");
    expect(tool.inputSchema).toEqual({
      type: "object",
      properties: {
        query: { description: "Free text matched against name and SKU.", type: "string" },
        status: { type: "string", enum: ["ACTIVE", "DISCONTINUED"] },
        tags: { type: "array", items: { type: "string" } },
        maxResults: { type: "integer", minimum: -32768, maximum: 32767, default: 10 },
        since: { type: "string", format: "date" },
        minPrice: { description: "An amount with two decimals.", type: "string", pattern: MONEY },
      },
      required: ["query"],
      additionalProperties: false,
    });
  });

  it("nested types across namespaces, bounded arrays, attributes, simple content, nillable, choice, 64-bit integers", () => {
    expect(findTool(c, "catalog__CreateOrder").inputSchema).toEqual({
      type: "object",
      properties: {
        customerId: {
          anyOf: [
            { type: "integer", minimum: 0, maximum: 9007199254740991 },
            { type: "string", pattern: "^\\+?[0-9]+$" },
          ],
        },
        line: {
          type: "array",
          minItems: 1,
          maxItems: 100,
          items: {
            type: "object",
            properties: {
              sku: { type: "string" },
              quantity: { type: "integer", minimum: -32768, maximum: 32767 },
              unitPrice: {
                type: "object",
                properties: {
                  currency: { type: "string", enum: ["EUR", "USD", "GBP"] },
                  value: { description: "An amount with two decimals.", type: "string", pattern: MONEY },
                },
                required: ["currency", "value"],
                additionalProperties: false,
              },
            },
            required: ["sku", "quantity", "unitPrice"],
            additionalProperties: false,
          },
        },
        shipTo: {
          type: "object",
          properties: {
            street: { type: "string" },
            city: { type: "string" },
            postcode: { type: "string" },
            country: { type: "string", pattern: "^(?:[A-Z]{2})$" },
          },
          required: ["street", "city", "country"],
          additionalProperties: false,
        },
        note: { type: ["string", "null"] },
        express: { type: "boolean" },
        deliverBy: { type: "string", format: "date-time" },
      },
      required: ["customerId", "line", "shipTo"],
      additionalProperties: false,
    });
  });

  it("cuts a circular type after one level of nesting", () => {
    const category = {
      description: "A product category; categories nest.",
      type: "object",
      properties: {
        name: { type: "string" },
        parent: {
          description: "A product category; categories nest.",
          type: "object",
          properties: { name: { type: "string" } },
          required: ["name"],
          additionalProperties: false,
        },
      },
      required: ["name"],
      additionalProperties: false,
    };
    expect(findTool(c, "catalog__GetCategory").inputSchema).toEqual({
      type: "object",
      properties: { category },
      required: ["category"],
      additionalProperties: false,
    });
  });

  it("names namespaces nowhere in what the agent sees", () => {
    const text = JSON.stringify(c.tools().map((t) => t.inputSchema));
    expect(text).not.toMatch(/urn:example|xmlns|xs:|tns:/);
  });
});

describe("soap connector: XSD → JSON Schema (types.wsdl: the remaining built-ins and constructs)", () => {
  it("maps binary, lists, unions, integer enums, time, duration, float, unbounded integers, anyType, groups, attributes, required recursion", async () => {
    const c = await soapFactory.create(
      soapFactory.configSchema.parse({ kind: "soap", name: "types", wsdl: "types.wsdl" }),
      {
        baseDir: FIXTURES,
        logger: testLogger,
      },
    );
    try {
      // The required self-reference cannot be left out: one level expands, the next is an empty object.
      const node = {
        type: "object",
        properties: {
          label: { type: "string" },
          next: {
            type: "object",
            properties: {
              label: { type: "string" },
              next: {
                type: "object",
                description: "Node: nested too deeply to expand here; send {}",
                properties: {},
                additionalProperties: false,
              },
            },
            required: ["label", "next"],
            additionalProperties: false,
          },
        },
        required: ["label", "next"],
        additionalProperties: false,
      };
      expect(findTool(c, "types__Everything").inputSchema).toEqual({
        type: "object",
        properties: {
          version: {
            anyOf: [
              { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
              { type: "string", pattern: "^[+-]?[0-9]+$" },
            ],
          },
          "@note": { type: "string" },
          changedBy: { description: "Who changed it.", type: "string" },
          blob: { type: "string", contentEncoding: "base64" },
          hash: { type: "string", pattern: "^(?:[0-9a-fA-F]{2})*$" },
          tint: { type: "string", enum: ["red", "green", "light", "dark"] },
          sizes: { type: "array", items: { type: "integer", minimum: 0, maximum: 255 } },
          level: { type: "integer", enum: [1, 2, 3] },
          at: { type: "string", format: "time" },
          ttl: { type: "string", format: "duration" },
          ratio: { type: "number" },
          big: {
            anyOf: [
              { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
              { type: "string", pattern: "^[+-]?[0-9]+$" },
            ],
          },
          anything: { type: "string" },
          chain: { ...node, type: ["object", "null"] },
          code: { type: "string", const: "X1" },
          note: { type: "string" },
        },
        required: [
          "version",
          "blob",
          "hash",
          "tint",
          "sizes",
          "level",
          "at",
          "ttl",
          "ratio",
          "big",
          "anything",
          "chain",
          "code",
        ],
        additionalProperties: false,
      });
    } finally {
      await c.close();
    }
  });
});
