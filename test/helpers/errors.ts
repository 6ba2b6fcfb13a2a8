import { expect } from "vitest";
import { GatewayError } from "../../src/core/index.js";

/** Awaits `p`, which must reject with a GatewayError, and returns that error for further checks. */
export async function rejection(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error("expected a rejection with a GatewayError, but the promise resolved");
}
