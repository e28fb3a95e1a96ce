// End-to-end test of codex-exec-mcp-server over Streamable HTTP with the
// MCP TypeScript SDK's client (@modelcontextprotocol/sdk, pinned in
// package-lock.json), against the real server, patched Bash and wrapper.
//
// Run: `npm ci && node --test http.test.mjs` in this directory (`cargo
// xtask ci --only node-e2e`), after `cargo build --workspace` and `cargo
// xtask bash`; CODEX_TEST_SERVER, CODEX_TEST_WRAPPER and CODEX_TEST_BASH
// override the paths.
//
// The server listens on 127.0.0.1 (an ephemeral port, read from its log)
// with a bearer token, in a read-only sandbox with a `prompt` rule for
// `touch` and a `forbidden` one for `rm`. Covered: the handshake, tools/list,
// echo, a timeout, progress notifications, cancellation killing the
// command, forbidden, a prompt accepted and declined (elicitation), a
// missing or wrong token (401, nothing runs), an Origin from another site
// (403), and a non-loopback address without a token (refused at start).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

function binary(envVar, relative, hint) {
  const path = process.env[envVar] || join(root, relative);
  if (!existsSync(path)) {
    throw new Error(`${path} missing: ${hint} (or set ${envVar})`);
  }
  return path;
}

const server = binary('CODEX_TEST_SERVER', 'target/debug/codex-exec-mcp-server', 'run `cargo build --workspace` first');
const wrapper = binary('CODEX_TEST_WRAPPER', 'target/debug/codex-execve-wrapper', 'run `cargo build --workspace` first');
const bash = binary('CODEX_TEST_BASH', 'target/dist/vendor/x86_64-unknown-linux-musl/bash', 'run `cargo xtask bash` first');

const TOKEN = 'node-e2e-token-0123456789abcdef';
const RULES = 'prefix_rule(pattern = ["touch"], decision = "prompt")\n'
  + 'prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "keep it")\n';

/** A string no other process has in its command line. */
let counter = 0;
function marker() {
  counter += 1;
  return `${process.pid}${Date.now() % 1000000}${counter}`;
}

/** Live (not zombie) processes whose command line contains `marker`. */
function pidsWith(marker) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (cmdline.includes(marker) && !/^\s*Z/.test(stat.slice(stat.lastIndexOf(')') + 1))) {
        found.push(Number(name));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Polls `condition` every 20 ms for at most `secs` seconds. */
async function eventually(secs, condition) {
  const deadline = Date.now() + secs * 1000;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return condition();
}

let dir;
let work;
let child;
let url;
let stderr = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcp-node-http-'));
  for (const d of ['codex/rules', 'home', 'work', 'outside']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  writeFileSync(join(dir, 'codex/rules/a.rules'), RULES);
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  work = realpathSync(join(dir, 'work'));
  const args = ['--bash', bash, '--execve', wrapper, '--sandbox', 'read-only',
    '--listen', '127.0.0.1:0', '--auth-token-file', join(dir, 'token')];
  child = spawn(server, args, {
    cwd: work,
    env: { CODEX_HOME: join(dir, 'codex'), HOME: join(dir, 'home'), RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const listening = await eventually(20, () => /listening: MCP over Streamable HTTP at (http:\/\/\S+\/mcp)/.test(stderr));
  assert.ok(listening, `the server never listened:\n${stderr}`);
  url = new URL(stderr.match(/at (http:\/\/\S+\/mcp)/)[1]);
});

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `body` with a connected client; failures carry the server's log. */
async function withClient({ token = TOKEN, answers = [] } = {}, body) {
  const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  const client = new Client({ name: 'node-http-e2e', version: '0' }, { capabilities: { elicitation: { form: {} } } });
  const asked = [];
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(request.params.message);
    const action = answers.shift();
    assert.ok(action, `unexpected elicitation: ${request.params.message}`);
    return action === 'accept' ? { action, content: {} } : { action };
  });
  try {
    await client.connect(transport);
    try {
      await body({ client, asked });
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  } catch (error) {
    error.message += `\n--- server stderr:\n${stderr}`;
    throw error;
  }
}

async function shell(client, command, extra = {}, options = {}) {
  const result = await client.callTool({ name: 'shell', arguments: { command, workdir: work, ...extra } }, undefined, options);
  assert.equal(result.isError, false, JSON.stringify(result));
  const parsed = JSON.parse(result.content[0].text);
  assert.deepEqual(result.structuredContent, parsed);
  return parsed;
}

/** A raw POST to the endpoint: status, headers, body text. */
function post(headers, body) {
  return new Promise((resolvePost, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolvePost({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('handshake, tools, echo, timeout, progress, forbidden, prompts', async () => {
  await withClient({ answers: ['accept', 'decline'] }, async ({ client, asked }) => {
    assert.equal(client.getServerVersion().name, 'codex-exec-mcp-server');
    assert.ok(client.getServerCapabilities().tools);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), ['shell', 'exec_command', 'write_stdin', 'kill_process', 'list_processes']);

    const echo = await shell(client, 'echo ok; echo err >&2');
    assert.equal(echo.output, 'ok\nerr\n');
    assert.equal(echo.exit_code, 0);

    const m = marker();
    const timedOut = await shell(client, `echo started; sleep 30.${m}`, { timeout_ms: 500 });
    assert.equal(timedOut.timed_out, true);
    assert.equal(timedOut.exit_code, 124);
    assert.equal(timedOut.output, 'started\n');
    assert.ok(await eventually(5, () => pidsWith(m).length === 0), 'the timed-out sleep survived');

    // Progress: the lines arrive while the command waits on a fifo, which
    // is fed once they have.
    const fifo = join(dir, 'outside', 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const progress = [];
    const waiting = shell(client, `echo first-line; echo second-line; read x < ${fifo}`, { timeout_ms: 20000 }, {
      onprogress: (p) => progress.push(p.message),
    });
    assert.ok(await eventually(10, () => progress.some((p) => p.includes('second-line'))), JSON.stringify(progress));
    writeFileSync(fifo, 'go\n');
    assert.equal((await waiting).output, 'first-line\nsecond-line\n');

    const denied = await shell(client, 'rm -f x; echo status=$?');
    assert.match(denied.output, /^Execution denied: .*keep it/);
    assert.match(denied.output, /status=1\n$/);

    const accepted = join(work, 'accepted');
    const a = await shell(client, `touch ${accepted}; echo status=$?`);
    assert.equal(a.output, 'status=0\n');
    assert.ok(existsSync(accepted), 'the approved touch ran outside the sandbox');
    const declined = join(work, 'declined');
    const d = await shell(client, `touch ${declined}; echo status=$?`);
    assert.equal(d.output, 'Execution denied: User declined execution\nstatus=1\n');
    assert.ok(!existsSync(declined));
    assert.equal(asked.length, 2);
    assert.match(asked[0], /^Allow agent to run `\S*touch /);
  });
});

test('cancellation kills the command', async () => {
  await withClient({}, async ({ client }) => {
    const m = marker();
    const controller = new AbortController();
    const call = client.callTool({ name: 'shell', arguments: { command: `sleep 30.${m}`, workdir: work, timeout_ms: 60000 } },
      undefined, { signal: controller.signal });
    assert.ok(await eventually(20, () => pidsWith(m).length > 0), 'the sleep never started');
    controller.abort('test');
    await assert.rejects(call);
    assert.ok(await eventually(5, () => pidsWith(m).length === 0), `the sleep survived: ${pidsWith(m)}`);
    assert.equal((await shell(client, 'echo after')).output, 'after\n');
  });
});

test('a missing or wrong token gets 401 and runs nothing', async () => {
  const target = join(work, 'unauthorized');
  for (const token of [null, 'wrong-token-0123456789abcdef']) {
    await assert.rejects(
      withClient({ token }, async () => {}),
      (e) => e.code === 401 || /401|Unauthorized/i.test(String(e)),
    );
  }
  const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'shell', arguments: { command: `touch ${target}`, workdir: work } } };
  const missing = await post({}, call);
  assert.equal(missing.status, 401);
  assert.match(missing.headers['www-authenticate'], /^Bearer /);
  const wrong = await post({ authorization: 'Bearer wrong-token-0123456789abcdef' }, call);
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers['www-authenticate'], /error="invalid_token"/);
  assert.ok(!existsSync(target), 'a call ran without the token');
});

test('an Origin from another site is refused', async () => {
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'n', version: '0' } } };
  const auth = { authorization: `Bearer ${TOKEN}` };
  const foreign = await post({ ...auth, origin: 'http://evil.example' }, init);
  assert.equal(foreign.status, 403, foreign.text);
  const local = await post({ ...auth, origin: `http://localhost:${url.port}` }, init);
  assert.equal(local.status, 200, local.text);
});

test('a non-loopback address without a token refuses to start', () => {
  const env = { CODEX_HOME: join(dir, 'codex'), HOME: join(dir, 'home') };
  const r = spawnSync(server, ['--bash', bash, '--execve', wrapper, '--listen', '0.0.0.0:0'], { env, encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0:0 without a token/);
});
