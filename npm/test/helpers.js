// Shared helpers for the launcher tests: build a package directory around the
// real launcher, run it, and describe a run fully when an assertion fails.
"use strict";

const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { targetTriple } = require("../bin/codex-shell-tool-mcp.js");

const NPM_DIR = path.join(__dirname, "..");
const LAUNCHER_REL = path.join("bin", "codex-shell-tool-mcp.js");

// Temporary package dirs, removed when the test process exits.
const created = [];
process.on("exit", () => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh package dir holding a copy of the launcher (and nothing in vendor/). */
function makePackage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shell-tool-mcp-test-"));
  created.push(dir);
  fs.mkdirSync(path.join(dir, "bin"));
  fs.copyFileSync(path.join(NPM_DIR, LAUNCHER_REL), path.join(dir, LAUNCHER_REL));
  return dir;
}

/** The vendor dir for this machine inside `pkg`, created. */
function vendorDir(pkg) {
  const triple = targetTriple(process.platform, process.arch);
  if (triple === null) throw new Error(`tests need linux-x64 or linux-arm64, not ${process.platform}-${process.arch}`);
  const dir = path.join(pkg, "vendor", triple);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A package whose server is test/fake-server.js. */
function makeFakePackage() {
  const pkg = makePackage();
  const vendor = vendorDir(pkg);
  const server = path.join(vendor, "codex-exec-mcp-server");
  fs.copyFileSync(path.join(__dirname, "fake-server.js"), server);
  fs.chmodSync(server, 0o755);
  return { pkg, vendor };
}

/** Runs the launcher in `pkg` synchronously. */
function runLauncher(pkg, args, { env = {}, nodeArgs = [], input } = {}) {
  const argv = [...nodeArgs, path.join(pkg, LAUNCHER_REL), ...args];
  const result = spawnSync(process.execPath, argv, {
    env: { ...process.env, ...env },
    input,
    encoding: "utf8",
    timeout: 30000,
  });
  result.describe = () => describe(argv, env, result);
  return result;
}

function describe(argv, env, r) {
  return [
    `command: ${process.execPath} ${argv.join(" ")}`,
    `env: ${JSON.stringify(env)}`,
    `status: ${r.status} signal: ${r.signal} error: ${r.error}`,
    `stdout:\n${r.stdout}`,
    `stderr:\n${r.stderr}`,
  ].join("\n");
}

module.exports = { NPM_DIR, LAUNCHER_REL, makePackage, makeFakePackage, vendorDir, runLauncher, describe };
