/**
 * The child process a large REST spec is loaded in (see loadRestSpec): it receives one
 * SpecRequest, runs prepareSpec, writes the result to the request's file, replies and exits, so
 * every byte the parse used, malloc arenas included, goes back to the OS. stdout is not
 * connected: under `serve --stdio` the gateway's stdout is the MCP protocol stream.
 */
import { writeFile } from "node:fs/promises";
import { serialize } from "node:v8";
import { prepareSpec, replyFor, type SpecReply, type SpecRequest } from "./spec-process.js";

function reply(msg: SpecReply): void {
  // Exit only once the reply is flushed; exiting also drops any keep-alive sockets a fetch left.
  process.send!(msg, () => process.exit(0));
}

process.once("message", ({ job, replyFile }: SpecRequest) => {
  prepareSpec(job)
    // "wx": the file is new, in a directory the gateway just created for this load.
    .then((prepared) => writeFile(replyFile, serialize(prepared), { flag: "wx", mode: 0o600 }))
    .then(
      () => reply({ ok: true }),
      (err: unknown) => reply(replyFor(err)),
    );
});

// The parent going away (even by SIGKILL) closes the IPC channel: never outlive it.
process.on("disconnect", () => process.exit(0));
