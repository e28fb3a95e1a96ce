// End-to-end test of codex-exec-mcp-server with the MCP TypeScript SDK
// (@modelcontextprotocol/sdk, pinned in package.json) over stdio.
//
// Run: `npm ci && node --test` in this directory (`cargo xtask ci --only
// node-e2e`). Needs the debug server and wrapper (`cargo build --workspace`)
// and the patched Bash (`cargo xtask bash`); CODEX_TEST_SERVER,
// CODEX_TEST_WRAPPER and CODEX_TEST_BASH override the paths.
//
// The server runs the real patched Bash and wrapper in a read-only sandbox
// with a `prompt` rule for `touch`, so only an escalated (approved) `touch`
// can create a file. Covered: the handshake (the SDK asks for its latest
// revision), the tool's schemas, an `echo` whose structuredContent the SDK
// validates against the outputSchema, a tool error, elicitation accepted
// and declined, and a client that declared no elicitation capability.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

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

const PROMPT_TOUCH = 'prefix_rule(pattern = ["touch"], decision = "prompt")\n';

/** A transport that records every message it carries. */
class Recording {
  constructor(inner) {
    this.inner = inner;
    this.received = [];
  }
  async start() {
    this.inner.onmessage = (message, extra) => {
      this.received.push(message);
      this.onmessage?.(message, extra);
    };
    this.inner.onerror = (error) => this.onerror?.(error);
    this.inner.onclose = () => this.onclose?.();
    return this.inner.start();
  }
  send(message, options) {
    return this.inner.send(message, options);
  }
  close() {
    return this.inner.close();
  }
}

/**
 * Starts the server with its own CODEX_HOME, HOME and workspace, connects a
 * client, and runs `body`; on failure the error carries the server's
 * command line and stderr.
 */
async function withSession({ elicitation, answers = [] }, body) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-node-e2e-'));
  let stderr = '';
  const args = ['--bash', bash, '--execve', wrapper, '--rules', join(dir, 'prompt.rules'), '--sandbox', 'read-only'];
  try {
    for (const d of ['codex/rules', 'home', 'work']) {
      mkdirSync(join(dir, d), { recursive: true });
    }
    writeFileSync(join(dir, 'prompt.rules'), PROMPT_TOUCH);
    const work = realpathSync(join(dir, 'work'));
    const stdio = new StdioClientTransport({
      command: server,
      args,
      cwd: work,
      env: { CODEX_HOME: join(dir, 'codex'), HOME: join(dir, 'home'), RUST_LOG: 'info' },
      stderr: 'pipe',
    });
    stdio.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const transport = new Recording(stdio);
    const capabilities = elicitation ? { elicitation: { form: {} } } : {};
    const client = new Client({ name: 'node-e2e', version: '0' }, { capabilities });
    const asked = [];
    if (elicitation) {
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        asked.push(request.params);
        const action = answers.shift();
        assert.ok(action, `unexpected elicitation: ${request.params.message}`);
        return action === 'accept' ? { action, content: {} } : { action };
      });
    }
    await client.connect(transport);
    try {
      await body({ client, transport, work, asked });
    } finally {
      await client.close();
    }
  } catch (error) {
    error.message += `\n--- server: ${server} ${args.join(' ')}\n--- server stderr:\n${stderr}`;
    throw error;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Calls `shell`; checks one text content equal to structuredContent. */
async function shell(client, command, workdir) {
  const result = await client.callTool({ name: 'shell', arguments: { command, workdir } });
  assert.equal(result.isError, false, JSON.stringify(result));
  assert.equal(result.content.length, 1, JSON.stringify(result));
  assert.equal(result.content[0].type, 'text');
  const parsed = JSON.parse(result.content[0].text);
  assert.deepEqual(result.structuredContent, parsed);
  return parsed;
}

test('handshake, tool schemas, echo, prompt accepted and declined', async () => {
  await withSession({ elicitation: true, answers: ['accept', 'decline'] }, async ({ client, transport, work, asked }) => {
    const init = transport.received.find((m) => m.id !== undefined && m.result?.protocolVersion);
    assert.equal(init.result.protocolVersion, LATEST_PROTOCOL_VERSION);
    assert.equal(client.getServerVersion().name, 'codex-exec-mcp-server');
    const caps = client.getServerCapabilities();
    assert.ok(caps.tools, JSON.stringify(caps));
    assert.deepEqual(caps.experimental['codex/sandbox-state'], { version: '1.0.0' });

    // The SDK compiles the outputSchema with Ajv, which warns about formats
    // it does not know (and a strict Ajv rejects them): expect no warning.
    const warnings = [];
    const warn = console.warn;
    console.warn = (...args) => warnings.push(args.join(' '));
    let tools;
    try {
      ({ tools } = await client.listTools());
    } finally {
      console.warn = warn;
    }
    assert.deepEqual(warnings, []);
    assert.deepEqual(tools.map((t) => t.name), ['shell', 'exec_command', 'write_stdin', 'kill_process', 'list_processes']);
    assert.ok(tools.every((t) => t.outputSchema?.type === 'object'));
    const [tool] = tools;
    assert.equal(tool.name, 'shell');
    assert.equal(tool.inputSchema.type, 'object');
    assert.equal(tool.inputSchema.title, 'ExecParams');
    assert.deepEqual(tool.inputSchema.required, ['command', 'workdir']);
    assert.deepEqual(Object.keys(tool.inputSchema.properties).sort(), ['command', 'login', 'timeout_ms', 'workdir']);
    assert.equal(tool.inputSchema.properties.command.type, 'string');
    assert.equal(tool.inputSchema.properties.workdir.type, 'string');
    assert.equal(tool.inputSchema.properties.timeout_ms.type, 'integer');
    assert.equal(tool.inputSchema.properties.login.type, 'boolean');
    assert.equal(tool.outputSchema.type, 'object');
    assert.deepEqual(tool.outputSchema.required, ['exit_code', 'output', 'duration', 'timed_out']);
    assert.deepEqual(tool.outputSchema.properties.duration.required, ['secs', 'nanos']);

    // The SDK validates structuredContent against the outputSchema here.
    const echo = await shell(client, 'echo ok; echo err >&2', work);
    assert.equal(echo.exit_code, 0);
    assert.equal(echo.output, 'ok\nerr\n');
    assert.equal(echo.timed_out, false);
    assert.equal(typeof echo.duration.secs, 'number');
    assert.equal(typeof echo.duration.nanos, 'number');

    // A tool error carries no structuredContent; the SDK accepts that even
    // though the tool declares an outputSchema.
    const bad = await client.callTool({ name: 'shell', arguments: { command: 'true', workdir: 'relative' } });
    assert.equal(bad.isError, true, JSON.stringify(bad));
    assert.match(bad.content[0].text, /workdir `relative` is not an absolute path/);

    const touch = (await shell(client, 'command -v touch', work)).output.trim();
    const accepted = join(work, 'accepted');
    const r = await shell(client, `touch ${accepted}; echo status=$?`, work);
    assert.equal(r.output, 'status=0\n');
    assert.ok(existsSync(accepted), 'the approved touch ran outside the sandbox');
    assert.equal(asked.length, 1);
    assert.equal(asked[0].message, `Allow agent to run \`${touch} ${accepted}\` in \`${work}\`?`);
    assert.equal(asked[0].requestedSchema.type, 'object');

    const declined = join(work, 'declined');
    const d = await shell(client, `touch ${declined}; echo status=$?`, work);
    assert.equal(d.output, 'Execution denied: User declined execution\nstatus=1\n');
    assert.ok(!existsSync(declined));
    assert.equal(asked.length, 2);
  });
});

test('a client without elicitation is denied with the reason', async () => {
  await withSession({ elicitation: false }, async ({ client, work }) => {
    const target = join(work, 'f');
    const r = await shell(client, `touch ${target}; echo status=$?`, work);
    assert.match(r.output, /^Execution denied: approval was needed, but the MCP client does not support elicitation/);
    assert.match(r.output, /status=1\n$/);
    assert.ok(!existsSync(target));
  });
});
