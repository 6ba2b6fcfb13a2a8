import type { AnyConnectorFactory } from "../core/index.js";
import { mqFactory } from "./mq/index.js";
import { restFactory } from "./rest/index.js";
import { soapFactory } from "./soap/index.js";
import { sqlFactory } from "./sql/index.js";

/** The one table of connector kinds. Adding a kind is one line here; no import side effects. */
export const connectorFactories = {
  sql: sqlFactory,
  rest: restFactory,
  soap: soapFactory,
  mq: mqFactory,
} satisfies Record<string, AnyConnectorFactory>;

export type ConnectorKind = keyof typeof connectorFactories;

export function factoryFor(kind: string): AnyConnectorFactory | undefined {
  return Object.hasOwn(connectorFactories, kind) ? connectorFactories[kind as ConnectorKind] : undefined;
}
