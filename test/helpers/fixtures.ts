import { existsSync } from "node:fs";
import { resolve } from "node:path";

/**
 * The shared real-world fixtures (RFC 6962 vectors, Petstore, NumberConversion WSDL) live in
 * `shared/fixtures` beside the repository, in development and in CI alike.
 */
export const SHARED_FIXTURES = resolve(
  process.env.PORTCULLIS_SHARED_FIXTURES ?? resolve(import.meta.dirname, "../../../shared/fixtures"),
);

if (!existsSync(SHARED_FIXTURES)) {
  throw new Error(
    `shared fixtures not found at ${SHARED_FIXTURES}: set PORTCULLIS_SHARED_FIXTURES to shared/fixtures`,
  );
}

export const fixture = (...parts: string[]): string => resolve(SHARED_FIXTURES, ...parts);
