/**
 * Real services the suites talk to. Each is named by an environment variable that `.ci/run`
 * sets. Locally an unset variable skips that suite; under CI=true it fails the run, because a
 * silently skipped service suite is a test that cannot fail.
 */
export const SERVICES = {
  postgres: "PORTCULLIS_TEST_PG_URL",
  mysql: "PORTCULLIS_TEST_MYSQL_URL",
  rabbitmq: "PORTCULLIS_TEST_AMQP_URL",
  redis: "PORTCULLIS_TEST_REDIS_URL",
} as const;

export type ServiceName = keyof typeof SERVICES;

/** The service URL, or undefined (locally) when its variable is unset. Throws under CI. */
export function serviceUrl(name: ServiceName): string | undefined {
  const variable = SERVICES[name];
  const url = process.env[variable];
  if (url) return url;
  if (process.env.CI === "true" || process.env.CI === "1") {
    throw new Error(`${variable} is not set: under CI=true the ${name} suite must run (see .ci/run)`);
  }
  return undefined;
}
