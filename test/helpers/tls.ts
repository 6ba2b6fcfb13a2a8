import { execFileSync } from "node:child_process";

/** Runs openssl in `dir` (the test's scratch directory), quietly; throws when it fails. */
export function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/**
 * A fresh self-signed certificate valid for a day: `<name>.key` and `<name>.crt` in `dir`, RSA
 * 2048, subject `subject`, with the given subjectAltName when one is passed.
 */
export function selfSignedCert(dir: string, name: string, subject: string, subjectAltName?: string): void {
  openssl(
    dir,
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`],
    ...["-days", "1", "-subj", subject],
    ...(subjectAltName ? ["-addext", `subjectAltName=${subjectAltName}`] : []),
  );
}
