// A scripted model server on 127.0.0.1 standing in for the model API of a
// real MCP client: the OpenAI Responses API (`POST /v1/responses`, SSE) for
// the Codex CLI and the Anthropic Messages API (`POST /v1/messages`, SSE)
// for Claude Code.
//
// The script is one tool call. On the first turn the model picks, from the
// tools the client sent, the one the client made of our server's `shell`
// tool (never a hard-coded name: clients spell MCP tool names their own
// way) and calls it with the case's arguments. On the next turn, when the
// tool's output comes back in the request, it records that output and ends
// the turn with a short text. Requests without our tool (a client's side
// requests: titles, quota checks) get a short text answer; anything else
// the client asks for gets a 404 and is recorded, so a test can see it.

import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';

/** CLIENTS_E2E_DUMP=FILE appends every model request body to FILE (JSON lines). */
function dump(body) {
  if (process.env.CLIENTS_E2E_DUMP) appendFileSync(process.env.CLIENTS_E2E_DUMP, `${JSON.stringify(body)}\n`);
}

/** What the model says when the turn is over. */
export const DONE_TEXT = 'done';

/**
 * Picks the client's name for our `shell` tool: a tool whose name ends in
 * `shell`, names the MCP server (`server`, compared without punctuation, as
 * clients sanitise it) and whose input schema has `command` and `workdir`.
 */
export function findShellTool(tools, server, tool = SHELL) {
  const squash = (s) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const candidates = tools.filter((t) => {
    const props = t.schema?.properties ?? {};
    return t.name.endsWith(tool.name) && squash(t.name).includes(squash(server)) && tool.props.every((p) => p in props);
  });
  return candidates.length === 1 ? candidates[0].name : undefined;
}

/** Our tools as the model finds them: the name's end and arguments the schema has. */
export const SHELL = { name: 'shell', props: ['command', 'workdir'] };
export const EXEC_COMMAND = { name: 'exec_command', props: ['cmd', 'yield_time_ms'] };

/**
 * Starts the model. `server` is the MCP server's name in the client's
 * config; `call` the arguments of the call of `tool` (`shell` unless
 * given: one of the tools above). Resolves to
 * `{ url, state, close }`; `state` fills in as the client talks:
 * `toolNames` (the tools the client offered when the model picked one),
 * `shellTool` (the name picked), `output` (the tool result as the client
 * passed it back), `requests` (method and path of every request) and
 * `unexpected` (requests the model could not answer).
 */
export async function startModel({ server, call, tool = SHELL }) {
  const state = { toolNames: undefined, shellTool: undefined, output: undefined, requests: [], unexpected: [], searches: 0 };
  const callId = `call_e2e_${Math.random().toString(36).slice(2, 10)}`;

  const http = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = req.url.split('?')[0];
    state.requests.push(`${req.method} ${path}`);
    let body;
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch {
      body = {};
    }
    try {
      if (req.method === 'POST' && /\/responses$/.test(path)) {
        responses(body, res);
      } else if (req.method === 'POST' && /\/messages$/.test(path)) {
        messages(body, res);
      } else if (req.method === 'POST' && /\/messages\/count_tokens$/.test(path)) {
        json(res, 200, { input_tokens: 100 });
      } else {
        state.unexpected.push(`${req.method} ${req.url}`);
        json(res, 404, { error: { type: 'not_found_error', message: `scripted model: no ${req.method} ${path}` } });
      }
    } catch (error) {
      state.unexpected.push(`${req.method} ${req.url}: ${error.stack}`);
      json(res, 500, { error: { type: 'api_error', message: String(error) } });
    }
  });

  function json(res, status, value) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  }

  function sse(res, events) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const e of events) {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    }
    res.end();
  }

  /** The tool result of our call, if this request carries it. */
  function noteOutput(output) {
    if (output === undefined) return false;
    state.output = output;
    return true;
  }

  /** First turn: the `shell` tool's name, or undefined (recorded as unexpected). */
  function pickTool(tools) {
    state.toolNames = tools.map((t) => t.name);
    const name = findShellTool(tools, server, tool);
    if (name === undefined) {
      state.unexpected.push(`no single ${server} ${tool.name} tool among: ${tools.map((t) => t.name).join(', ')}`);
    }
    state.shellTool ??= name;
    return name;
  }

  // --- OpenAI Responses API (Codex) ---
  function responses(body, res) {
    dump(body);
    const input = Array.isArray(body.input) ? body.input : [];
    const result = input.find((i) => i.type === 'function_call_output' && i.call_id === callId);
    // Newer Codex groups each MCP server's tools in a `namespace` tool; the
    // call then names the namespace and the tool inside it.
    const tools = (body.tools ?? []).flatMap((t) => {
      if (t.type === 'function') return [{ name: t.name, schema: t.parameters }];
      if (t.type === 'namespace') {
        return (t.tools ?? [])
          .filter((f) => f.type === 'function')
          .map((f) => ({ name: `${t.name}__${f.name}`, namespace: t.name, inner: f.name, schema: f.parameters }));
      }
      return [];
    });
    const id = `resp_${state.requests.length}`;
    const created = { type: 'response.created', response: { id } };
    const completed = {
      type: 'response.completed',
      response: { id, usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 } },
    };
    let item;
    if (noteOutput(result?.output)) {
      item = { type: 'message', role: 'assistant', id: `msg_${id}`, content: [{ type: 'output_text', text: DONE_TEXT }] };
    } else {
      const name = pickTool(tools);
      const tool = tools.find((t) => t.name === name);
      item =
        tool === undefined
          ? { type: 'message', role: 'assistant', id: `msg_${id}`, content: [{ type: 'output_text', text: 'no shell tool' }] }
          : {
              type: 'function_call',
              id: `fc_${id}`,
              call_id: callId,
              ...(tool.namespace === undefined ? { name } : { namespace: tool.namespace, name: tool.inner }),
              arguments: JSON.stringify(call),
            };
    }
    sse(res, [
      created,
      { type: 'response.output_item.added', item },
      { type: 'response.output_item.done', item },
      completed,
    ]);
  }

  // --- Anthropic Messages API (Claude Code) ---
  function messages(body, res) {
    dump(body);
    const tools = (body.tools ?? []).filter((t) => t.name).map((t) => ({ name: t.name, schema: t.input_schema }));
    const last = body.messages?.at(-1);
    const blocks = Array.isArray(last?.content) ? last.content : [];
    const result = blocks.find((b) => b.type === 'tool_result' && b.tool_use_id === callId);
    const id = `msg_e2e_${state.requests.length}`;
    const start = {
      type: 'message_start',
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model: body.model ?? 'claude-e2e',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 1 },
      },
    };
    const text = (t) => [
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } },
      { type: 'message_stop' },
    ];
    if (noteOutput(result === undefined ? undefined : { content: result.content, is_error: result.is_error })) {
      sse(res, [start, ...text(DONE_TEXT)]);
      return;
    }
    const ours = tools.some((t) => findShellTool([t], server, tool) !== undefined);
    const search = tools.find((t) => t.name === 'ToolSearch');
    const searched = blocks.some((b) => b.type === 'tool_result' && b.tool_use_id === `${callId}_search`);
    if (!ours && search !== undefined && !searched && body.stream !== false && state.searches < 1) {
      // Claude Code defers MCP tools behind its ToolSearch tool: search by
      // keyword (the server's name), as a model would, to have them loaded.
      state.searches += 1;
      const input = { query: `+${server} ${tool.name}` };
      sse(res, [
        start,
        { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: `${callId}_search`, name: search.name, input: {} } },
        { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) } },
        { type: 'content_block_stop', index: 0 },
        { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } },
        { type: 'message_stop' },
      ]);
      return;
    }
    if (!ours && searched) {
      state.unexpected.push(`ToolSearch loaded no ${server} ${tool.name} tool; tools now: ${tools.map((t) => t.name).join(', ')}`);
    }
    if (!ours || body.stream === false) {
      // A side request (title, quota probe): answer in text.
      if (body.stream === false) {
        json(res, 200, { ...start.message, content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn' });
      } else {
        sse(res, [start, ...text('ok')]);
      }
      return;
    }
    const name = pickTool(tools);
    sse(res, [
      start,
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: callId, name, input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(call) } },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20 } },
      { type: 'message_stop' },
    ]);
  }

  await new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', resolve);
  });
  const { port } = http.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () =>
      new Promise((resolve) => {
        http.closeAllConnections?.();
        http.close(() => resolve());
      }),
  };
}
