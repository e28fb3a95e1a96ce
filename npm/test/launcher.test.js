// Launcher behaviour against a fake server: platform mapping, argv, exit
// codes, signal forwarding and re-raising.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { targetTriple, serverArgs } = require("../bin/codex-shell-tool-mcp.js");
const { LAUNCHER_REL, makePackage, makeFakePackage, runLauncher } = require("./helpers.js");

test("platform mapping", () => {
  assert.equal(targetTriple("linux", "x64"), "x86_64-unknown-linux-musl");
  assert.equal(targetTriple("linux", "arm64"), "aarch64-unknown-linux-musl");
  assert.equal(targetTriple("darwin", "arm64"), null);
  assert.equal(targetTriple("win32", "x64"), null);
  assert.equal(targetTriple("linux", "ia32"), null);
});

test("user --bash/--execve win over the shipped ones", () => {
  assert.deepEqual(serverArgs("/v", ["--bash=/b", "x"]), ["--execve", "/v/codex-execve-wrapper", "--bash=/b", "x"]);
  assert.deepEqual(serverArgs("/v", ["--execve", "/w"]), ["--bash", "/v/bash", "--execve", "/w"]);
});

test("passes --execve, --bash and the user's args, exits with the server's code", () => {
  const { pkg, vendor } = makeFakePackage();
  const r = runLauncher(pkg, ["--rules", "my file.rules", "check", "ls"], {
    env: { FAKE_SERVER_MODE: "argv", FAKE_SERVER_CODE: "7" },
  });
  assert.equal(r.status, 7, r.describe());
  assert.deepEqual(JSON.parse(r.stdout).argv, [
    "--execve",
    path.join(vendor, "codex-execve-wrapper"),
    "--bash",
    path.join(vendor, "bash"),
    "--rules",
    "my file.rules",
    "check",
    "ls",
  ]);
});

test("exit code 0 stays 0", () => {
  const { pkg } = makeFakePackage();
  const r = runLauncher(pkg, [], { env: { FAKE_SERVER_MODE: "argv" } });
  assert.equal(r.status, 0, r.describe());
});

for (const sig of ["SIGKILL", "SIGTERM", "SIGSEGV"]) {
  test(`server killed by ${sig} → launcher dies of ${sig}`, () => {
    const { pkg } = makeFakePackage();
    const r = runLauncher(pkg, [], { env: { FAKE_SERVER_MODE: `die:${sig}` } });
    assert.equal(r.signal, sig, r.describe());
    assert.equal(r.status, null, r.describe());
  });
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  test(`${sig} is forwarded to the server and re-raised`, async () => {
    const { pkg } = makeFakePackage();
    const child = spawn(process.execPath, [path.join(pkg, LAUNCHER_REL)], {
      env: { ...process.env, FAKE_SERVER_MODE: "wait" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    await new Promise((resolve, reject) => {
      child.stdout.on("data", (d) => {
        stdout += d;
        if (stdout.includes("ready\n")) resolve();
      });
      child.on("exit", () => reject(new Error(`launcher exited before ready\nstdout:\n${stdout}\nstderr:\n${stderr}`)));
    });
    child.kill(sig);
    const { code, signal } = await exited;
    const detail = `code ${code} signal ${signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
    assert.match(stdout, new RegExp(`got ${sig}\\n`), detail);
    assert.equal(signal, sig, detail);
  });
}

test("unsupported platform: one-line error naming it, exit 1", () => {
  const pkg = makePackage();
  const preload = path.join(pkg, "pretend-win32.js");
  fs.writeFileSync(preload, 'Object.defineProperty(process, "platform", { value: "win32" });\n');
  const r = runLauncher(pkg, [], { nodeArgs: ["--require", preload] });
  assert.equal(r.status, 1, r.describe());
  assert.equal(r.stdout, "", r.describe());
  assert.match(r.stderr, /^codex-shell-tool-mcp: unsupported platform win32-\w+ .*\n$/, r.describe());
});

test("missing vendor binaries: clear error, exit 1", () => {
  const pkg = makePackage();
  const r = runLauncher(pkg, []);
  assert.equal(r.status, 1, r.describe());
  assert.match(r.stderr, /missing .*codex-exec-mcp-server/, r.describe());
});
