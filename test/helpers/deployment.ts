import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(REPO_ROOT, "src/cli.ts");

/** `node --import tsx src/cli.ts …`: the real CLI, from source, as a child process. */
export function cliCommand(...args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ["--import", "tsx", CLI, ...args] };
}

export interface Deployment {
  dir: string;
  configPath: string;
  dbFile: string;
  write(relPath: string, value: unknown): void;
  cleanup(): void;
}

export interface DeploymentOptions {
  /** Merged over the default gateway config. */
  config?: Record<string, unknown>;
  /** Number of extra declared tools, to exercise pagination. */
  extraTools?: number;
  /** Scopes the local identity holds. */
  scopes?: string[];
}

/**
 * A throwaway deployment directory, laid out like the repository: mcp.config.json, connectors/
 * with an `inv` SQLite connector over a real database file, scopes/ and audit/.
 */
export function createDeployment(options: DeploymentOptions = {}): Deployment {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-e2e-"));
  for (const sub of ["connectors", "scopes", "audit", "data"]) mkdirSync(join(dir, sub));
  const dbFile = join(dir, "data", "inventory.db");
  const db = new Database(dbFile);
  db.exec(`
    CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, qty INTEGER NOT NULL, price TEXT NOT NULL);
    INSERT INTO items (sku, name, qty, price) VALUES
      ('A-1', 'anvil', 3, '199.99'), ('B-2', 'bucket', 40, '4.50'), ('C-3', 'chisel', 12, '12.00');
  `);
  db.close();

  const write = (relPath: string, value: unknown): void => {
    writeFileSync(
      join(dir, relPath),
      typeof value === "string" ? value : `${JSON.stringify(value, null, 2)}\n`,
    );
  };

  const extra = Array.from({ length: options.extraTools ?? 0 }, (_, i) => ({
    name: `count_${String(i).padStart(3, "0")}`,
    description: `Counts items (copy ${i}).`,
    statement: "SELECT count(*) AS n FROM items",
    readOnly: true,
  }));

  write("connectors/inv.json", {
    kind: "sql",
    name: "inv",
    description: "Inventory database",
    engine: "sqlite",
    file: "../data/inventory.db",
    timeoutMs: 2000,
    tools: [
      {
        name: "get_item",
        description: "One item by SKU.",
        statement: "SELECT id, sku, name, qty, price FROM items WHERE sku = :sku",
        parameters: { sku: { type: "string", maxLength: 20, description: "Stock keeping unit" } },
        required: ["sku"],
        readOnly: true,
      },
      {
        name: "set_qty",
        description: "Sets an item's quantity.",
        statement: "UPDATE items SET qty = :qty WHERE sku = :sku",
        parameters: { sku: { type: "string" }, qty: { type: "integer", minimum: 0 } },
        required: ["sku", "qty"],
        readOnly: false,
        idempotent: true,
      },
      ...extra,
    ],
    query: { enabled: true },
  });
  write("scopes/tester.json", {
    name: "tester",
    description: "Everything of the test inventory.",
    tools: ["inv__*"],
  });
  write("scopes/reader.json", {
    name: "reader",
    description: "Read-only inventory.",
    tools: ["inv__get_item"],
  });

  const config = {
    transports: { http: { enabled: true, host: "127.0.0.1", port: 0 } },
    identity: {
      local: { subject: "tester@example.com", scopes: options.scopes ?? ["tester"], overHttp: true },
    },
    logging: { level: process.env.PORTCULLIS_TEST_LOG ?? "warn" },
    limits: { pageSize: 2, shutdownGraceMs: 5000 },
    ...options.config,
  };
  write("mcp.config.json", config);
  return {
    dir,
    configPath: join(dir, "mcp.config.json"),
    dbFile,
    write,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
