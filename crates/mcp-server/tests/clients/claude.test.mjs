// The real Claude Code (`claude -p`, as package-lock.json pins it) against
// the built server, with the scripted Messages API model of model.mjs on
// 127.0.0.1 (ANTHROPIC_BASE_URL, a dummy ANTHROPIC_API_KEY).
//
// Claude Code defers MCP tools behind its ToolSearch tool: the scripted
// model searches by the server's name first, as a model would, then calls
// the tool the search loaded. Each case is one `claude -p` run.
//
// Claude Code is configured with the README's snippets (read from
// README.md): "claude-add" (`claude mcp add …`, run as written with the
// debug server and the case's `--rules` after `--`) and "claude-settings"
// (written to ~/.claude/settings.json). Test only: the model's address and
// key, and Claude Code's documented switches for telemetry, error
// reports, the auto-updater and other non-essential traffic.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  README_URL,
  SERVER_NAME,
  assertOnlyLoopback,
  claudeCli,
  clientEnv,
  explained,
  makeRun,
  processResult,
  processesGone,
  readmeSnippet,
  removeRun,
  runClient,
  shellResult,
  startHttpServer,
  writeLauncher,
  writeRules,
} from './harness.mjs';
import { DONE_TEXT, EXEC_COMMAND, SHELL, startModel } from './model.mjs';

before(assertOnlyLoopback);

const FORBID_CURL = 'prefix_rule(pattern = ["curl"], decision = "forbidden", justification = "use the fetch tool")\n';
const PROMPT_TOUCH = 'prefix_rule(pattern = ["touch"], decision = "prompt")\n';

/** `claude mcp add …` of the README, with our launcher and `args` after `--`. */
function mcpAddArgv(launcher, args) {
  const line = readmeSnippet('claude-add').trim();
  const words = line.split(/\s+/);
  const dashes = words.indexOf('--');
  assert.ok(words[0] === 'claude' && words[1] === 'mcp' && words[2] === 'add' && dashes > 0, `README.md claude-add snippet: ${line}`);
  return [...words.slice(1, dashes + 1), launcher, ...args];
}

/**
 * One `claude -p` run whose model calls `shell` with `call(run)` (workdir
 * defaults to the workspace); `hook`, when given, is an Elicitation hook
 * command added to the settings. Then `expect(result, run)` with the
 * parsed shell result; failures carry the client's output, the model's
 * view and the server log.
 */
/**
 * `claude mcp add --transport http …` of the README (claude-http), run by
 * `sh` as a user would paste it, with `SHELL_TOOL_TOKEN` set, Claude
 * Code's path for `claude` and the server's address for the README's.
 */
function mcpAddHttpArgv(url) {
  let line = readmeSnippet('claude-http').trim();
  assert.ok(line.startsWith('claude mcp add --transport http ') && line.includes(README_URL), `README.md claude-http snippet: ${line}`);
  line = line.replace(/^claude /, `'${claudeCli.bin}' `).replace(README_URL, url);
  return ['sh', '-c', line];
}

/** A background `sleep`'s length, unusual enough to find it by its command line. */
const BACKGROUND_SECS = 3139;

async function claudeShell(t, { label, rules, call, server = [], hook, overHttp = false, tool = SHELL, parse = shellResult }, expect) {
  const run = makeRun(`claude-${label}`);
  const launcher = writeLauncher(run);
  const args = [...server, ...(rules === undefined ? [] : ['--rules', writeRules(run, rules)])];
  // Over HTTP the test starts the server (a sidecar) with the same
  // arguments; Claude Code sends the token in the header the README adds.
  const http = overHttp ? await startHttpServer(run, args) : undefined;
  const model = await startModel({ server: SERVER_NAME, tool, call: { workdir: run.work, ...call(run) } });
  const what = { model: model.state };
  const env = clientEnv(run, {
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: 'sk-ant-clients-e2e-dummy',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    DISABLE_AUTOUPDATER: '1',
    ...(http ? { SHELL_TOOL_TOKEN: http.token } : {}),
  });
  try {
    await explained(run, what, async () => {
      const add = http ? mcpAddHttpArgv(http.url) : [claudeCli.bin, ...mcpAddArgv(launcher, args)];
      const added = await runClient(add, { cwd: run.work, env });
      what.client = { argv: add, ...added };
      assert.equal(added.code, 0, 'claude mcp add exit status');

      // README.md, "Using it from an MCP client", claude-settings:
      const settings = JSON.parse(readmeSnippet('claude-settings'));
      if (hook !== undefined) {
        settings.hooks = { Elicitation: [{ matcher: SERVER_NAME, hooks: [{ type: 'command', command: hook(run) }] }] };
      }
      mkdirSync(join(run.home, '.claude'), { recursive: true });
      writeFileSync(join(run.home, '.claude/settings.json'), JSON.stringify(settings, null, 2));

      const argv = [claudeCli.bin, '-p', 'Run the command.', '--output-format', 'json'];
      const c = await runClient(argv, { cwd: run.work, env });
      what.client = { argv, ...c };
      t.diagnostic(`claude ${claudeCli.version} -p took ${c.ms} ms; tool: ${model.state.shellTool}`);
      assert.equal(c.code, 0, 'claude -p exit status');
      assert.deepEqual(model.state.unexpected, [], 'requests the scripted model could not answer');
      assert.ok(model.state.shellTool, 'the model found the shell tool');
      assert.equal(JSON.parse(c.stdout).result, DONE_TEXT, "claude -p printed the model's last text");
      await expect(parse(model.state.output), run);
      if (http) {
        await http.close();
        assert.match(readFileSync(run.log, 'utf8'), /shell call/, 'the call reached the HTTP server');
      }
    });
    removeRun(run);
  } finally {
    await model.close();
    if (http) await http.close().catch(() => {});
  }
}

/** The prompt the server shows for `touch FILE` run in `workdir`. */
async function touchPrompt(run, file) {
  const { stdout } = await runClient(['sh', '-c', 'command -v touch'], { cwd: run.work, env: process.env });
  return `Allow agent to run \`${stdout.trim()} ${file}\` in \`${run.work}\`?`;
}

describe(`Claude Code ${claudeCli.version}`, { timeout: 300_000 }, () => {
  test('exec_command: a background process returns its output so far and a handle, and dies with the client', (t) =>
    claudeShell(
      t,
      {
        label: 'exec-command',
        tool: EXEC_COMMAND,
        parse: processResult,
        call: () => ({ cmd: `echo started; exec sleep ${BACKGROUND_SECS}`, yield_time_ms: 1000 }),
      },
      async (r) => {
        assert.equal(r.output, 'started\n');
        assert.match(r.session_id ?? '', /^[0-9a-f]{32}$/, 'a handle while it runs');
        assert.equal(r.exit_code, undefined, 'still running');
        await processesGone(['sleep', `${BACKGROUND_SECS}`]);
      },
    ));

  test('echo', (t) =>
    claudeShell(t, { label: 'echo', call: () => ({ command: 'echo hello; echo err >&2' }) }, (r) => {
      assert.equal(r.output, 'hello\nerr\n');
      assert.equal(r.exit_code, 0);
      assert.equal(r.timed_out, false);
    }));

  test('over HTTP with a bearer token header (README claude-http): echo runs, writes as the sandbox allows', (t) =>
    claudeShell(
      t,
      {
        label: 'http',
        overHttp: true,
        call: (run) => ({ command: `echo hello; touch ${run.work}/inside; echo inside=$?; touch ${run.outside}/outside; echo outside=$?` }),
      },
      (r, run) => {
        // Refused by the read-only view (with a mount namespace, as here
        // under root) or by Landlock.
        assert.equal(
          r.output.replace('Read-only file system', 'Permission denied'),
          `hello\ninside=0\ntouch: cannot touch '${run.outside}/outside': Permission denied\noutside=1\n`,
        );
        assert.equal(r.exit_code, 0);
        assert.equal(existsSync(`${run.work}/inside`), true, 'file written in the workspace');
        assert.equal(existsSync(`${run.outside}/outside`), false, 'file written outside the workspace');
      },
    ));

  test('a forbidden rule denies with its justification', (t) =>
    claudeShell(
      t,
      { label: 'forbidden', rules: FORBID_CURL, call: () => ({ command: 'curl -s http://127.0.0.1:9/; echo status=$?' }) },
      (r) => {
        assert.match(r.output, /^Execution denied: .*use the fetch tool.*\nstatus=1\n$/);
        assert.equal(r.exit_code, 0);
      },
    ));

  test('a timeout returns timed_out with the output so far', (t) =>
    claudeShell(
      t,
      { label: 'timeout', call: () => ({ command: 'echo started; sleep 30; echo finished', timeout_ms: 1000 }) },
      (r) => {
        assert.equal(r.timed_out, true);
        assert.equal(r.exit_code, 124);
        assert.equal(r.output, 'started\n');
      },
    ));

  // The server runs read-only, so only an approved (escalated) touch can
  // create the file.
  const promptCase = { rules: PROMPT_TOUCH, server: ['--sandbox', 'read-only'], call: (run) => ({ command: `touch ${run.outside}/f; echo status=$?` }) };

  // Claude Code opens with `server/discover` (MCP 2026-07-28): the server
  // answers the call with an input-required result, Claude Code retries it
  // with its answer. In -p, with no one to ask, Claude Code 2.1.332
  // answers "cancel".
  test('a prompt rule reaches the client: no one to answer in -p, so cancelled', (t) =>
    claudeShell(t, { label: 'prompt', ...promptCase }, async (r, run) => {
      assert.doesNotMatch(r.output, /does not let the server ask|does not support elicitation/, 'denied without asking');
      assert.equal(r.output, 'Execution denied: User cancelled execution\nstatus=1\n');
      const log = readFileSync(run.log, 'utf8');
      assert.ok(log.includes(await touchPrompt(run, `${run.outside}/f`)), 'the server logged the prompt it sent');
      assert.equal(existsSync(`${run.outside}/f`), false);
    }));

  test('a prompt rule accepted by an Elicitation hook runs the program outside the sandbox', (t) =>
    claudeShell(
      t,
      {
        label: 'prompt-accepted',
        ...promptCase,
        // Records the hook's input and accepts.
        hook: (run) =>
          `cat > ${run.dir}/elicitation.json; echo '{"hookSpecificOutput":{"hookEventName":"Elicitation","action":"accept","content":{}}}'`,
      },
      async (r, run) => {
        assert.equal(r.output, 'status=0\n');
        assert.ok(existsSync(`${run.dir}/elicitation.json`), 'the Elicitation hook ran');
        const asked = JSON.parse(readFileSync(`${run.dir}/elicitation.json`, 'utf8'));
        assert.equal(asked.message, await touchPrompt(run, `${run.outside}/f`), JSON.stringify(asked));
        assert.equal(existsSync(`${run.outside}/f`), true, 'the approved touch ran');
      },
    ));
});
