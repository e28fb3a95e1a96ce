// The real Codex CLI (`codex exec`, the versions package-lock.json pins:
// the current one and 0.97.0, the reference's) against the built server,
// with the scripted Responses API model of model.mjs on 127.0.0.1.
//
// Each case is one `codex exec` run: the model calls the tool Codex made of
// our `shell` (found in the request's tool list) once, and the test checks
// the result Codex passed back to the model, and the files the command
// wrote, for the sandbox Codex was started with.
//
// Codex is configured with the README's "codex-config" snippet (read from
// README.md; only `command`/`args` are replaced, by the debug server and
// the case's `--rules`), plus test-only settings: the scripted model
// provider, `approval_policy = "never"`, no update check, no analytics.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  README_URL,
  SERVER_NAME,
  assertOnlyLoopback,
  clientEnv,
  codexClis,
  explained,
  makeRun,
  processResult,
  processesGone,
  readmeSnippet,
  removeRun,
  replaceOnce,
  runClient,
  shellResult,
  startHttpServer,
  writeLauncher,
  writeRules,
} from './harness.mjs';
import { DONE_TEXT, EXEC_COMMAND, SHELL, startModel } from './model.mjs';

before(assertOnlyLoopback);

/** A background `sleep`'s length, unusual enough to find it by its command line. */
const BACKGROUND_SECS = 3137;

const FORBID_CURL = 'prefix_rule(pattern = ["curl"], decision = "forbidden", justification = "use the fetch tool")\n';

function codexConfig({ modelUrl, launcher, rules, http }) {
  let mcp;
  if (http) {
    // README.md, "Over HTTP", codex-http: only the address differs.
    mcp = replaceOnce(readmeSnippet('codex-http'), new RegExp(README_URL.replaceAll('.', '\\.'), 'g'), http.url, 'README.md codex-http snippet');
  } else {
    const what = 'README.md codex-config snippet';
    mcp = readmeSnippet('codex-config');
    mcp = replaceOnce(mcp, /^command = .*$/m, `command = ${JSON.stringify(launcher)}`, what);
    mcp = replaceOnce(mcp, /^args = .*$/m, `args = ${JSON.stringify(rules ? ['--rules', rules] : [])}`, what);
  }
  return `# Test only: the scripted model, no approvals, nothing phoning home.
model = "scripted"
model_provider = "scripted"
approval_policy = "never"
check_for_update_on_startup = false

[model_providers.scripted]
name = "scripted model (tests/clients/model.mjs)"
base_url = "${modelUrl}/v1"
wire_api = "responses"

[analytics]
enabled = false

# README.md, "Using it from an MCP client", codex-config:
${mcp}`;
}

/**
 * One `codex exec --sandbox MODE` run whose model calls `shell` with
 * `call(run)` (workdir defaults to the workspace), then `expect(result,
 * run, model)` with the parsed shell result; failures carry the client's
 * output, the model's view and the server log.
 */
async function codexShell(t, cli, { sandbox, rules, call, overHttp = false, tool = SHELL, parse = shellResult }, expect) {
  const run = makeRun(`codex-${cli.version}-${sandbox}${overHttp ? '-http' : ''}`);
  const launcher = writeLauncher(run);
  const rulesFile = rules === undefined ? undefined : writeRules(run, rules);
  // Over HTTP the test starts the server (a sidecar); Codex gets the token
  // in the variable the README's snippet names.
  const http = overHttp ? await startHttpServer(run, rulesFile ? ['--rules', rulesFile] : []) : undefined;
  const model = await startModel({ server: SERVER_NAME, tool, call: { workdir: run.work, ...call(run) } });
  const what = { model: model.state };
  try {
    // (The HTTP server, started in the same HOME, made it already.)
    mkdirSync(join(run.home, '.codex'), { recursive: true });
    writeFileSync(join(run.home, '.codex/config.toml'), codexConfig({ modelUrl: model.url, launcher, rules: rulesFile, http }));
    await explained(run, what, async () => {
      const argv = [process.execPath, cli.bin, 'exec', ...cli.extraArgs, '--skip-git-repo-check', '--sandbox', sandbox, '-C', run.work, 'Run the command.'];
      const env = clientEnv(run, http ? { SHELL_TOOL_TOKEN: http.token } : {});
      const c = await runClient(argv, { cwd: run.work, env });
      what.client = { argv, ...c };
      t.diagnostic(`codex ${cli.version} exec took ${c.ms} ms; tool: ${model.state.shellTool}`);
      assert.equal(c.code, 0, 'codex exec exit status');
      assert.equal(c.stdout, `${DONE_TEXT}\n`, "codex exec printed the model's last text");
      assert.deepEqual(model.state.unexpected, [], 'requests the scripted model could not answer');
      assert.ok(model.state.shellTool, 'the model found the shell tool');
      await expect(parse(model.state.output), run, model.state);
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

/** Writes one file in the workspace and one outside it, then says which worked. */
const writes = (run) => ({
  command: `echo hello; touch ${run.work}/inside; echo inside=$?; touch ${run.outside}/outside; echo outside=$?`,
});

/**
 * `output` with each refused write's reason as Landlock gives it: with a
 * mount namespace (a server running as root, or with user namespaces)
 * the read-only view refuses it first (`EROFS`), else Landlock (`EACCES`).
 */
const asLandlockRefuses = (output) => output.replace(/Read-only file system/g, 'Permission denied');

/** The output `writes` gives for the writes that succeed. */
function writesOutput(run, { inside, outside }) {
  const line = (path, ok, name) => (ok ? `${name}=0\n` : `touch: cannot touch '${path}': Permission denied\n${name}=1\n`);
  return `hello\n${line(`${run.work}/inside`, inside, 'inside')}${line(`${run.outside}/outside`, outside, 'outside')}`;
}

for (const cli of codexClis) {
  describe(`Codex ${cli.version}`, { timeout: 300_000 }, () => {
    for (const [sandbox, allowed] of [
      ['read-only', { inside: false, outside: false }],
      ['workspace-write', { inside: true, outside: false }],
      ['danger-full-access', { inside: true, outside: true }],
    ]) {
      test(`--sandbox ${sandbox}: echo runs, writes as the sandbox allows`, (t) =>
        codexShell(t, cli, { sandbox, call: writes }, (r, run) => {
          assert.equal(asLandlockRefuses(r.output), writesOutput(run, allowed));
          assert.equal(r.exit_code, 0);
          assert.equal(r.timed_out, false);
          assert.equal(existsSync(`${run.work}/inside`), allowed.inside, 'file written in the workspace');
          assert.equal(existsSync(`${run.outside}/outside`), allowed.outside, 'file written outside the workspace');
        }));
    }

    test('over HTTP with a bearer token (README codex-http): echo runs, writes as the sandbox allows', (t) =>
      codexShell(t, cli, { sandbox: 'workspace-write', call: writes, overHttp: true }, (r, run) => {
        assert.equal(asLandlockRefuses(r.output), writesOutput(run, { inside: true, outside: false }));
        assert.equal(r.exit_code, 0);
        assert.equal(existsSync(`${run.work}/inside`), true, 'file written in the workspace');
        assert.equal(existsSync(`${run.outside}/outside`), false, 'file written outside the workspace');
      }));

    test('a forbidden rule denies with its justification', (t) =>
      codexShell(
        t,
        cli,
        { sandbox: 'workspace-write', rules: FORBID_CURL, call: () => ({ command: 'curl -s http://127.0.0.1:9/; echo status=$?' }) },
        (r) => {
          assert.match(r.output, /^Execution denied: .*use the fetch tool.*\nstatus=1\n$/);
          assert.equal(r.exit_code, 0);
        },
      ));

    test('exec_command: a background process returns its output so far and a handle, and dies with the client', (t) =>
      codexShell(
        t,
        cli,
        {
          sandbox: 'workspace-write',
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

    test('a timeout returns timed_out with the output so far', (t) =>
      codexShell(
        t,
        cli,
        { sandbox: 'workspace-write', call: () => ({ command: 'echo started; sleep 30; echo finished', timeout_ms: 1000 }) },
        (r) => {
          assert.equal(r.timed_out, true);
          assert.equal(r.exit_code, 124);
          assert.equal(r.output, 'started\n');
        },
      ));
  });
}
