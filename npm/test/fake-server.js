#!/usr/bin/env node
// Stand-in for codex-exec-mcp-server in launcher tests. Behaviour comes from
// FAKE_SERVER_MODE:
//   argv        print {"argv": [...]} on stdout, exit FAKE_SERVER_CODE (default 0)
//   die:SIG     kill itself with SIG (default action)
//   wait        install handlers for SIGINT/SIGTERM/SIGHUP, print "ready"; on a
//               signal print "got SIG" and die of that same signal
"use strict";

const mode = process.env.FAKE_SERVER_MODE || "argv";

if (mode === "argv") {
  process.stdout.write(JSON.stringify({ argv: process.argv.slice(2) }) + "\n");
  process.exitCode = Number(process.env.FAKE_SERVER_CODE || "0");
} else if (mode.startsWith("die:")) {
  process.kill(process.pid, mode.slice("die:".length));
  // Keep the loop alive until the signal lands.
  setInterval(() => {}, 1000);
} else if (mode === "wait") {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      process.stdout.write(`got ${sig}\n`, () => {
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
      });
    });
  }
  process.stdout.write("ready\n");
  setInterval(() => {}, 1000);
} else {
  process.stderr.write(`fake-server: unknown FAKE_SERVER_MODE ${mode}\n`);
  process.exit(2);
}
