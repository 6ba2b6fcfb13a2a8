import { pino } from "pino";

/** A silent logger for components under test; set PORTCULLIS_TEST_LOG=debug to see their logs. */
export const testLogger = pino({ level: process.env.PORTCULLIS_TEST_LOG ?? "silent" }, pino.destination(2));
