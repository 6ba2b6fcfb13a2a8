#!/usr/bin/env node
import("../dist/cli.js").then(
  (cli) => cli.run(),
  (err) => {
    process.stderr.write(
      `portcullis: cannot load dist/cli.js (${err.message}). Run "npm run build" in the Portcullis directory first.\n`,
    );
    process.exit(1);
  },
);
