#!/usr/bin/env node
// Launcher for codex-shell-tool-mcp: runs the static server shipped in
// vendor/<target-triple>/ with the wrapper and the patched Bash beside it.
//
// Plain JavaScript, no dependencies. Stdio is inherited (stdout is the MCP
// channel), SIGINT/SIGTERM/SIGHUP are forwarded to the server, and the
// launcher exits as the server exited: same code, or the same signal.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const NAME = "codex-shell-tool-mcp";
const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Maps Node's platform/arch to the Rust target triple under vendor/, or null. */
function targetTriple(platform, arch) {
  if (platform === "linux" && arch === "x64") return "x86_64-unknown-linux-musl";
  if (platform === "linux" && arch === "arm64") return "aarch64-unknown-linux-musl";
  return null;
}

/** True if the user already chose this flag (`--flag VALUE` or `--flag=VALUE`). */
function hasFlag(args, flag) {
  return args.some((arg) => arg === flag || arg.startsWith(`${flag}=`));
}

/** The server's argv: our --execve/--bash first (unless the user gave them), then the user's. */
function serverArgs(vendorDir, userArgs) {
  const args = [];
  if (!hasFlag(userArgs, "--execve")) {
    args.push("--execve", path.join(vendorDir, "codex-execve-wrapper"));
  }
  if (!hasFlag(userArgs, "--bash")) {
    args.push("--bash", path.join(vendorDir, "bash"));
  }
  return args.concat(userArgs);
}

function fail(message) {
  process.stderr.write(`${NAME}: ${message}\n`);
  process.exit(1);
}

function main() {
  const triple = targetTriple(process.platform, process.arch);
  if (triple === null) {
    fail(`unsupported platform ${process.platform}-${process.arch} (supported: linux-x64, linux-arm64)`);
  }
  const vendorDir = path.join(__dirname, "..", "vendor", triple);
  const server = path.join(vendorDir, "codex-exec-mcp-server");
  if (!fs.existsSync(server)) {
    fail(`missing ${server}: this package was built without binaries for ${triple}`);
  }

  const child = spawn(server, serverArgs(vendorDir, process.argv.slice(2)), {
    stdio: "inherit",
  });

  const forwarders = new Map();
  for (const sig of FORWARDED_SIGNALS) {
    const forward = () => {
      // The child may already be gone; its exit event follows.
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    };
    forwarders.set(sig, forward);
    process.on(sig, forward);
  }

  child.on("error", (err) => fail(`cannot start ${server}: ${err.message}`));

  child.on("exit", (code, signal) => {
    for (const [sig, forward] of forwarders) process.removeListener(sig, forward);
    if (signal !== null) {
      // Die of the same signal so our parent sees what the server saw. With
      // our listeners gone the default action applies; if the signal is one
      // Node ignores (e.g. SIGPIPE), fall back to the shell convention.
      const number = os.constants.signals[signal] || 0;
      setTimeout(() => process.exit(128 + number), 1000);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

module.exports = { targetTriple, serverArgs };

if (require.main === module) {
  main();
}
