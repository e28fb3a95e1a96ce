"""End-to-end test of codex-exec-mcp-server with the official MCP Python SDK.

Usage: python test_e2e.py SERVER BASH

Speaks stdio to the real server, which runs the real patched Bash and
wrapper. Covers the handshake, the tool schema, a plain command, a `prompt`
rule answered through elicitation (accept, then decline), the sandbox state
in `_meta`, and a 2026-07-28 (server/discover) session, where a prompt is
an input-required result that the client answers by retrying the call.
"""

import json
import os
import pathlib
import sys
import tempfile

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

PROMPT_RULES = 'prefix_rule(pattern = ["touch"], decision = "prompt")\n'


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def decode(result):
    check(not result.is_error, f"tool error: {result}")
    check(len(result.content) == 1, f"one content block expected: {result}")
    data = json.loads(result.content[0].text)
    check(result.structured_content == data, f"structuredContent differs from text: {result}")
    return data


async def session_run(server, bash, root, answers, body, discover=False):
    """Starts the server with its own CODEX_HOME and HOME and runs `body`."""
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action=answers.pop(0))

    params = StdioServerParameters(
        command=server,
        args=["--bash", bash, "--sandbox", "read-only"],
        env={"CODEX_HOME": str(root / "codex"), "HOME": str(root / "home"), "RUST_LOG": "info"},
        cwd=str(root / "work"),
    )
    with open(root / "server.log", "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
                if discover:
                    await session.discover()
                else:
                    await session.initialize()
                await body(session, asked)


async def main(server, bash):
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        try:
            await scenario(server, bash, root)
        except BaseException:
            log = root / "server.log"
            print(f"--- server stderr:\n{log.read_text() if log.exists() else ''}", file=sys.stderr)
            raise
    print("python e2e: ok")


async def scenario(server, bash, root):
    for d in ["codex/rules", "home", "work"]:
        (root / d).mkdir(parents=True)
    (root / "codex/rules/touch.rules").write_text(PROMPT_RULES)
    work = root / "work"

    async def legacy(session, asked):
        init = session.initialize_result
        check(init.server_info.name == "codex-exec-mcp-server", f"server info: {init}")
        check(
            init.capabilities.experimental["codex/sandbox-state"] == {"version": "1.0.0"},
            f"capabilities: {init.capabilities}",
        )
        tools = (await session.list_tools()).tools
        check([t.name for t in tools] == ["shell", "exec_command", "write_stdin", "kill_process", "list_processes"], f"tools: {tools}")
        schema = tools[0].input_schema
        check(schema["title"] == "ExecParams", f"schema: {schema}")
        check(schema["required"] == ["command", "workdir"], f"schema: {schema}")
        check(tools[0].output_schema is not None, "no outputSchema")

        data = decode(await session.call_tool("shell", {"command": "echo out; echo err >&2; exit 7", "workdir": str(work)}))
        check(data["exit_code"] == 7 and data["output"] == "out\nerr\n", f"echo: {data}")
        check(data["timed_out"] is False, f"echo: {data}")

        # prompt → accepted → escalated out of the read-only sandbox.
        target = work / "accepted"
        data = decode(await session.call_tool("shell", {"command": f"touch {target}", "workdir": str(work)}))
        check(data["exit_code"] == 0 and target.exists(), f"accepted: {data}")
        check(len(asked) == 1 and asked[0].startswith("Allow agent to run `"), f"asked: {asked}")
        check(asked[0].endswith(f"/touch {target}` in `{work.resolve()}`?"), f"asked: {asked}")

        # prompt → declined → denied.
        target = work / "declined"
        data = decode(await session.call_tool("shell", {"command": f"touch {target}", "workdir": str(work)}))
        check(not target.exists(), f"declined: {data}")
        check(data["output"] == "Execution denied: User declined execution\n", f"declined: {data}")
        check(data["exit_code"] == 1, f"declined: {data}")

        # Sandbox state per call: danger-full-access lets plain programs write.
        target = work / "meta"
        meta = {"codex/sandbox-state-meta": {"sandboxPolicy": {"type": "danger-full-access"}, "sandboxCwd": str(work)}}
        data = decode(await session.call_tool("shell", {"command": f"echo x > {target}", "workdir": str(work)}, meta=meta))
        check(data["exit_code"] == 0 and target.exists(), f"meta: {data}")

    await session_run(server, bash, root, ["accept", "decline"], legacy)

    async def modern(session, asked):
        check(session.protocol_version == "2026-07-28", f"version: {session.protocol_version}")
        # A prompt comes back as an input-required result; the retry with the
        # answer and the requestState resumes the same running command.
        for action, created in [("accept", True), ("decline", False)]:
            target = work / f"modern-{action}"
            args = {"command": f"touch {target}; echo status=$?", "workdir": str(work)}
            first = await session.call_tool("shell", args, allow_input_required=True)
            check(isinstance(first, types.InputRequiredResult), f"modern {action}: {first}")
            check(not target.exists(), f"ran before the answer: {first}")
            request = first.input_requests["approval"]
            message = request.params.message
            check(message.endswith(f"/touch {target}` in `{work.resolve()}`?"), f"message: {message}")
            answer = {"approval": types.ElicitResult(action=action).model_dump(by_alias=True, exclude_none=True)}
            data = decode(
                await session.call_tool(
                    "shell", args, input_responses=answer, request_state=first.request_state
                )
            )
            check(target.exists() == created, f"modern {action}: {data}")
            expected = "status=0\n" if created else "Execution denied: User declined execution\nstatus=1\n"
            check(data["output"] == expected, f"modern {action}: {data}")
        check(asked == [], f"asked by request on 2026-07-28: {asked}")

    await session_run(server, bash, root, [], modern, discover=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    anyio.run(main, os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
