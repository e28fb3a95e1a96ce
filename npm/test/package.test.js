// The built npm tarball: unpack it and run the real server through the
// launcher (`--version`, then an MCP session with a `shell` call). Needs
// `cargo xtask dist` (or `cargo xtask npm`) first; the path can be given in
// CODEX_TEST_NPM_TGZ.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { targetTriple } = require("../bin/codex-shell-tool-mcp.js");
const { NPM_DIR, LAUNCHER_REL, runLauncher } = require("./helpers.js");

function findTarball() {
  if (process.env.CODEX_TEST_NPM_TGZ) return process.env.CODEX_TEST_NPM_TGZ;
  const dist = path.join(NPM_DIR, "..", "target", "dist");
  const found = fs.existsSync(dist)
    ? fs.readdirSync(dist).filter((f) => /^codex-shell-tool-mcp-npm-.*\.tgz$/.test(f))
    : [];
  if (found.length !== 1) {
    throw new Error(`expected one ${dist}/codex-shell-tool-mcp-npm-*.tgz, found ${found.length}: run \`cargo xtask npm\` first`);
  }
  return path.join(dist, found[0]);
}

/** Unpacks the tarball once; returns the package dir. */
let unpacked;
function pkgDir() {
  if (unpacked) return unpacked;
  const tgz = findTarball();
  assert.ok(fs.existsSync(tgz), `missing ${tgz}: run \`cargo xtask npm\` first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shell-tool-mcp-pkg-"));
  const r = spawnSync("tar", ["xzf", tgz, "-C", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, `tar xzf ${tgz}: ${r.stderr}`);
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  unpacked = path.join(dir, "package");
  return unpacked;
}

test("package.json: name, templated version, bin, mcpName", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(pkgDir(), "package.json"), "utf8"));
  assert.equal(manifest.name, "codex-shell-tool-mcp");
  assert.notEqual(manifest.version, "0.0.0-dev");
  assert.ok(findTarball().endsWith(`-npm-${manifest.version}.tgz`), "tarball name carries the version");
  assert.deepEqual(manifest.bin, { "codex-shell-tool-mcp": "bin/codex-shell-tool-mcp.js" });
  assert.match(manifest.mcpName, /^io\.github\.[^/]+\/codex-shell-tool-mcp$/);
  assert.equal(manifest.dependencies, undefined, "the launcher has no dependencies");
});

test("vendor dir for this machine holds the four executables", () => {
  const vendor = path.join(pkgDir(), "vendor", targetTriple(process.platform, process.arch));
  for (const name of ["codex-exec-mcp-server", "codex-execve-wrapper", "codex-sandbox-exec", "bash"]) {
    const mode = fs.statSync(path.join(vendor, name)).mode;
    assert.equal(mode & 0o777, 0o755, `${name} mode ${(mode & 0o777).toString(8)}`);
  }
});

test("the real server runs through the launcher: --version", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(pkgDir(), "package.json"), "utf8"));
  const r = runLauncher(pkgDir(), ["--version"]);
  assert.equal(r.status, 0, r.describe());
  assert.ok(r.stdout.includes(manifest.version), r.describe());
});

test("MCP session through the launcher: initialize, tools/list, shell writes a file", async () => {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "shell-tool-mcp-ws-"));
  await mcpSession(process.execPath, [path.join(pkgDir(), LAUNCHER_REL)], workspace, workspace);
});

// What a user types, as the issue states it: npx of the tarball, offline
// (a fresh npm cache, no registry needed: the package has no dependencies).
function npx(args, options) {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "shell-tool-mcp-npx-cache-"));
  process.on("exit", () => fs.rmSync(cache, { recursive: true, force: true }));
  const root = path.join(NPM_DIR, "..");
  const tgz = "./" + path.relative(root, findTarball());
  return ["npx", ["--yes", "--offline", tgz, ...args], { cwd: root, env: { ...process.env, npm_config_cache: cache }, ...options }];
}

test("npx --yes ./target/dist/<tarball> --version, offline", () => {
  const [cmd, args, options] = npx(["--version"], { encoding: "utf8" });
  const r = spawnSync(cmd, args, options);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  assert.match(r.stdout, /^codex-exec-mcp-server \d+\.\d+\.\d+/);
});

test("MCP session through npx of the tarball: initialize, tools/list, shell writes a file", async () => {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "shell-tool-mcp-ws-"));
  const [cmd, args, options] = npx([]);
  await mcpSession(cmd, args, options.cwd, workspace, options.env);
});

/** Drives one MCP session over the child's stdio; `workspace` is the shell's workdir. */
async function mcpSession(command, args, cwd, workspace, env = process.env) {
  const child = spawn(command, args, {
    cwd,
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const log = [];
  const pending = new Map();
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    log.push(`<- ${line}`);
    const msg = JSON.parse(line);
    if (msg.id !== undefined && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const detail = () => `exchange:\n${log.join("\n")}\nserver stderr:\n${stderr}`;
  const send = (msg) => {
    log.push(`-> ${JSON.stringify(msg)}`);
    child.stdin.write(JSON.stringify(msg) + "\n");
  };
  const request = (id, method, params) =>
    new Promise((resolve, reject) => {
      pending.set(id, resolve);
      exited.then(({ code, signal }) => reject(new Error(`server exited (${code ?? signal}) before answering ${method}\n${detail()}`)));
      send({ jsonrpc: "2.0", id, method, params });
    });

  try {
    const init = await request(1, "initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "npm-package-test", version: "0" },
    });
    assert.ok(init.result && init.result.capabilities.tools, `initialize: ${JSON.stringify(init)}\n${detail()}`);
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    const list = await request(2, "tools/list", {});
    assert.ok(list.result.tools.some((t) => t.name === "shell"), detail());
    const call = await request(3, "tools/call", {
      name: "shell",
      arguments: { command: "echo from-npm > out.txt && echo done", workdir: workspace, login: false },
    });
    assert.ok(call.result && !call.result.isError, `shell call: ${JSON.stringify(call)}\n${detail()}`);
    const outcome = call.result.structuredContent ?? JSON.parse(call.result.content[0].text);
    assert.equal(outcome.exit_code, 0, detail());
    assert.match(outcome.output, /done/, detail());
    assert.equal(fs.readFileSync(path.join(workspace, "out.txt"), "utf8"), "from-npm\n", detail());
    child.stdin.end();
    const { code, signal } = await exited;
    assert.equal(code, 0, `exit code ${code} signal ${signal}\n${detail()}`);
  } finally {
    child.kill("SIGKILL");
    fs.rmSync(workspace, { recursive: true, force: true });
  }
}
