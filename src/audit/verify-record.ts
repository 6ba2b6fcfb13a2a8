import { leafHash } from "./hash.js";
import { columnsOf, parseRecord, type RecordColumns } from "./record.js";
import type { FullRecordRow, RecordRow } from "./store.js";
import type { VerifyFailure } from "./verify.js";

/** Per-record checks shared by the sequential verifier and the verification worker threads. */

function sameColumns(a: RecordColumns, b: RecordColumns): boolean {
  return (
    a.time === b.time &&
    a.type === b.type &&
    a.callId === b.callId &&
    a.subject === b.subject &&
    a.connector === b.connector &&
    a.tool === b.tool &&
    a.outcome === b.outcome
  );
}

export function envelopeOf(row: FullRecordRow | undefined): { seq: number; prev: string } | undefined {
  if (!row) return undefined;
  try {
    return parseRecord(row.body.toString("utf8"));
  } catch {
    return undefined;
  }
}

/** Classifies what is wrong with the record at position `expected`, if anything. */
export function checkRecord(
  row: FullRecordRow,
  next: FullRecordRow | undefined,
  before: FullRecordRow | undefined,
  expected: number,
  prevHex: string,
): VerifyFailure | undefined {
  const hash = leafHash(row.body);
  // A stored hash that is not a blob (text, say) matches nothing, rather than throwing.
  const same = (other: RecordRow | undefined): boolean => other !== undefined && Buffer.isBuffer(other.hash) && hash.equals(other.hash);
  if (!same(row)) {
    // A record whose bytes carry its neighbour's hash was moved, not edited.
    const moved = same(next) || same(before);
    return moved
      ? { kind: "reordered", seq: expected, message: `record ${expected} holds the bytes of a neighbouring record` }
      : { kind: "modified", seq: expected, message: `record ${expected}: its bytes do not match its stored hash` };
  }
  let env;
  try {
    env = parseRecord(row.body.toString("utf8"));
  } catch (err) {
    return { kind: "modified", seq: expected, message: `record ${expected}: ${(err as Error).message}` };
  }
  if (env.seq !== expected) {
    if (env.prev === prevHex) {
      return { kind: "modified", seq: expected, message: `record ${expected}: its sequence number was changed to ${env.seq}` };
    }
    if (env.seq > expected) {
      if (envelopeOf(next)?.seq === expected) {
        return { kind: "reordered", seq: expected, message: `records ${expected} and ${env.seq} are out of order` };
      }
      return {
        kind: "deleted",
        seq: expected,
        toSeq: env.seq - 1,
        message: `records ${expected}..${env.seq - 1} were deleted (and later records renumbered)`,
      };
    }
    return {
      kind: "inserted",
      seq: env.seq,
      toSeq: expected - 1,
      message: `record(s) ${env.seq}..${expected - 1} were inserted: the record now at ${expected} was written as ${env.seq}`,
    };
  }
  if (env.prev !== prevHex) {
    if (expected === 0) return { kind: "modified", seq: 0, message: "record 0 does not start the chain" };
    return {
      kind: "modified",
      seq: expected - 1,
      message: `record ${expected - 1} is not the record that record ${expected} was chained to`,
    };
  }
  if (!sameColumns(columnsOf(env.event), row.columns)) {
    return { kind: "modified", seq: expected, message: `record ${expected}: its query columns were changed` };
  }
  return undefined;
}
