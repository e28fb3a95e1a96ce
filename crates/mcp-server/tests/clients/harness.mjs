// Shared pieces of the real-client tests: where the binaries are, one
// directory per run under target/clients-e2e/, the launcher the clients
// start as the MCP server, the README snippets the clients are configured
// with, running a client with a deadline, and reading the `shell` result
// out of what the client passed back to the model.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../../../..');

function binary(envVar, path, hint) {
  const p = process.env[envVar] || path;
  if (!existsSync(p)) {
    throw new Error(`${p} missing: ${hint} (or set ${envVar})`);
  }
  return p;
}

export const server = binary(
  'CODEX_TEST_SERVER',
  join(root, 'target/debug/codex-exec-mcp-server'),
  'run `cargo build --workspace` first',
);
export const bash = binary(
  'CODEX_TEST_BASH',
  join(root, 'target/dist/vendor/x86_64-unknown-linux-musl/bash'),
  'run `cargo xtask bash` first',
);
const npmHint = 'run `npm ci` in crates/mcp-server/tests/clients';
/** The Codex CLIs under test, as package-lock.json pins them. */
export const codexClis = [
  {
    version: '0.171.0',
    bin: binary('CODEX_TEST_CODEX', join(here, 'node_modules/@openai/codex/bin/codex.js'), npmHint),
    extraArgs: [],
  },
  {
    version: '0.97.0',
    bin: binary('CODEX_TEST_CODEX_097', join(here, 'node_modules/codex-0.97/bin/codex.js'), npmHint),
    // 0.97 fetches its model list from api.openai.com whatever the provider;
    // unreachable here, that costs a 5 s timeout per run.
    extraArgs: ['-c', 'features.remote_models=false'],
  },
];
export const claudeCli = {
  version: '2.1.332',
  bin: binary('CODEX_TEST_CLAUDE', join(here, 'node_modules/@anthropic-ai/claude-code/bin/claude.exe'), npmHint),
};

/** The MCP server's name in every client config (README's). */
export const SERVER_NAME = 'shell-tool';

/**
 * Fails unless this process sees no network but loopback: the clients must
 * not reach anything but the scripted model. `npm test` (and `cargo xtask
 * ci --only clients-e2e`) run the tests under `unshare --net`.
 */
export function assertOnlyLoopback() {
  const interfaces = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0].trim())
    .filter(Boolean);
  assert.deepEqual(
    interfaces,
    ['lo'],
    `these tests run real clients that must reach nothing but 127.0.0.1; run them in a network namespace with only loopback: unshare --net -- sh -c 'ip link set lo up && node --test' (found interfaces: ${interfaces.join(', ')})`,
  );
}

/**
 * A fresh directory for one client run under target/clients-e2e/ (not
 * /tmp: /tmp is writable under workspace-write, so a write outside the
 * workspace must go elsewhere). `work` is the workspace the client runs
 * in, `outside` a directory no sandbox mode but danger-full-access lets
 * the command write, `home` the client's HOME.
 */
export function makeRun(label) {
  const base = join(root, 'target/clients-e2e');
  mkdirSync(base, { recursive: true });
  const dir = realpathSync(mkdtempSync(join(base, `${label.replace(/[^a-z0-9.]+/gi, '-')}-`)));
  const run = { dir, work: join(dir, 'work'), outside: join(dir, 'outside'), home: join(dir, 'home'), log: join(dir, 'server.log') };
  for (const d of [run.work, run.outside, run.home]) mkdirSync(d);
  return run;
}

/**
 * The command the client starts as the MCP server: the debug server with
 * the patched Bash, its stderr (RUST_LOG=info) appended to `run.log`. It
 * stands in for `npx -y codex-shell-tool-mcp` of the README snippets; the
 * arguments the client config adds follow.
 */
/**
 * Removes a run's directory; kept when its case failed, or with
 * CLIENTS_E2E_KEEP=1, for a look.
 */
export function removeRun(run) {
  if (!process.env.CLIENTS_E2E_KEEP) rmSync(run.dir, { recursive: true, force: true });
}

export function writeLauncher(run) {
  const path = join(run.dir, 'codex-shell-tool-mcp');
  const q = (s) => `'${s.replaceAll("'", `'\\''`)}'`;
  writeFileSync(
    path,
    `#!/bin/sh\nRUST_LOG=info exec ${q(server)} --bash ${q(bash)} "$@" 2>>${q(run.log)}\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/**
 * The server over Streamable HTTP, started by the test as a user starts a
 * sidecar (README "Over HTTP"): the debug server on 127.0.0.1 (a port the
 * kernel picks) with a fresh token in `run.dir/token`, outside the
 * workspace, working directory `run.work`, stderr (RUST_LOG=info) to
 * `run.log`. Resolves to `{ url, token, close }` once it listens; `close`
 * sends SIGTERM and waits for its exit status.
 */
export async function startHttpServer(run, args = []) {
  const token = randomBytes(32).toString('hex');
  const tokenFile = join(run.dir, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const log = openSync(run.log, 'a');
  const argv = ['--bash', bash, '--listen', '127.0.0.1:0', '--auth-token-file', tokenFile, ...args];
  const child = spawn(server, argv, {
    cwd: run.work,
    env: { PATH: process.env.PATH, LANG: process.env.LANG ?? 'C.UTF-8', HOME: run.home, RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', log],
  });
  closeSync(log);
  const exited = once(child, 'exit');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /listening: MCP over Streamable HTTP at (http:\/\/\S+)/.exec(readFileSync(run.log, 'utf8'));
    if (m) {
      return {
        url: m[1],
        token,
        close: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          const [code, signal] = await exited;
          assert.equal(code, 0, `the HTTP server's exit after SIGTERM (signal ${signal})`);
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the HTTP server never listened: ${server} ${argv.join(' ')}\n${readFileSync(run.log, 'utf8')}`);
    }
    await sleep(50);
  }
}

/** The address the README's HTTP snippets use, replaced by the server's. */
export const README_URL = 'http://127.0.0.1:8080/mcp';

export function writeRules(run, text) {
  const path = join(run.dir, 'e2e.rules');
  writeFileSync(path, text);
  return path;
}

/**
 * The fenced block that follows `<!-- clients-e2e: NAME -->` in README.md:
 * the tests configure the clients with exactly what the README tells users.
 */
export function readmeSnippet(name) {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const marker = `<!-- clients-e2e: ${name} -->`;
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md has no ${marker} (the tests configure the clients from it)`);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at + marker.length));
  assert.ok(block, `README.md has no fenced block after ${marker}`);
  return block[1];
}

/** Replaces `pattern` in `text`, failing when it is not there (README drift). */
export function replaceOnce(text, pattern, replacement, what) {
  assert.ok(pattern.test(text), `${what}: ${pattern} not found in\n${text}`);
  return text.replace(pattern, replacement);
}

/** The environment a client runs with: nothing from ours but PATH and LANG. */
export function clientEnv(run, extra = {}) {
  return { PATH: process.env.PATH, LANG: process.env.LANG ?? 'C.UTF-8', HOME: run.home, ...extra };
}

/**
 * Runs a client to completion (or kills its process group after
 * `deadlineMs`); resolves to `{ code, signal, stdout, stderr, ms }`.
 */
export function runClient(argv, { cwd, env, deadlineMs = 120_000 }) {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, deadlineMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      if (killed) {
        reject(new Error(`${argv.join(' ')} still running after ${deadlineMs} ms; killed\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}`));
      } else {
        resolvePromise({ code, signal, stdout, stderr, ms });
      }
    });
  });
}

/** Every text the client passed back to the model as the tool's output. */
function texts(output) {
  if (output === undefined || output === null) return [];
  if (typeof output === 'string') return [output];
  if (Array.isArray(output)) return output.flatMap(texts);
  if (typeof output === 'object') {
    if (typeof output.text === 'string') return [output.text];
    if ('content' in output) return texts(output.content);
  }
  return [];
}

/**
 * The `shell` result `{exit_code, output, timed_out, ...}` from the tool
 * output the client handed to the model (Codex 0.97 passes the
 * structuredContent as a string, Codex 0.171 the same after a "Wall time"
 * line, Claude Code the text content), or a failure quoting it.
 */
export function shellResult(output) {
  return toolResult(output, 'exit_code', 'shell');
}

/** The result of our `exec_command` in the tool output the client passed back. */
export function processResult(output) {
  return toolResult(output, 'wall_time_ms', 'exec_command');
}

/** The JSON object with `key` and `output` in the tool output, or a failure naming `tool`. */
function toolResult(output, key, tool) {
  for (const t of texts(output)) {
    // The whole text, or what follows a line break (Codex 0.171 puts
    // "Wall time: …\nOutput:\n" before it).
    const starts = [0, ...[...t.matchAll(/\n(?=\{)/g)].map((m) => m.index + 1)];
    for (const start of starts) {
      try {
        const v = JSON.parse(t.slice(start));
        if (v && typeof v === 'object' && key in v && 'output' in v) return v;
      } catch {}
    }
  }
  assert.fail(`no ${tool} result in the tool output the client passed back: ${JSON.stringify(output)}`);
}

/**
 * Resolves once no process's command line is `argv` (e.g. a background
 * `sleep` the server must kill when its client goes), polling /proc; fails
 * after `ms` with the pids still there.
 */
export async function processesGone(argv, ms = 20_000) {
  const wanted = `${argv.join('\0')}\0`;
  const deadline = Date.now() + ms;
  for (;;) {
    const left = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/cmdline`, 'utf8') === wanted;
        } catch {
          return false;
        }
      });
    if (left.length === 0) return;
    if (Date.now() > deadline) assert.fail(`still running after ${ms} ms: ${argv.join(' ')} (pids ${left.join(', ')})`);
    await sleep(50);
  }
}

/**
 * Runs `body`; on failure adds what a reader needs to the error: the
 * client's command line, exit and output, the model's view and the server
 * log.
 */
export async function explained(run, what, body) {
  try {
    return await body();
  } catch (error) {
    const log = existsSync(run.log) ? readFileSync(run.log, 'utf8') : '(no server log)';
    const c = what.client;
    error.message +=
      `\n--- run directory: ${run.dir}` +
      (c ? `\n--- client: ${c.argv.join(' ')}\n--- exit ${c.code ?? c.signal} after ${c.ms} ms\n--- client stdout:\n${c.stdout.slice(-4000)}\n--- client stderr:\n${c.stderr.slice(-8000)}` : '') +
      (what.model ? `\n--- model: ${JSON.stringify(what.model, null, 1).slice(0, 6000)}` : '') +
      `\n--- server log:\n${log.slice(-8000)}`;
    throw error;
  }
}
