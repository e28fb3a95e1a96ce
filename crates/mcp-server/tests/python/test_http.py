"""End-to-end test of codex-exec-mcp-server over Streamable HTTP with the
official MCP Python SDK's client.

Usage: python test_http.py SERVER BASH

Starts the real server with `--listen 127.0.0.1:0` and a bearer token (the
port is read from its log), in a read-only sandbox with a `prompt` rule for
`touch` and a `forbidden` one for `rm`. Covers, in a session (MCP
2025-11-25 and older): initialize, tools/list, echo, a timeout, progress
notifications, cancellation killing the command, forbidden, a prompt
accepted and declined through elicitation; stateless (2026-07-28,
server/discover): a prompt answered through the input-required round trip;
a missing or wrong token (401, nothing runs); an Origin from another site
(403); a non-loopback address without a token (refused at start).
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import anyio
import httpx2
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOKEN = "python-e2e-token-0123456789abcdef"
RULES = (
    'prefix_rule(pattern = ["touch"], decision = "prompt")\n'
    'prefix_rule(pattern = ["rm"], decision = "forbidden", justification = "keep it")\n'
)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def decode(result):
    check(not result.is_error, f"tool error: {result}")
    data = json.loads(result.content[0].text)
    check(result.structured_content == data, f"structuredContent differs from text: {result}")
    return data


counter = 0


def marker():
    global counter
    counter += 1
    return f"{os.getpid()}{time.monotonic_ns() % 10**9}{counter}"


def pids_with(marker):
    """Live (not zombie) processes whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and not stat.rsplit(")", 1)[-1].strip().startswith("Z"):
            found.append(int(entry))
    return found


async def eventually(secs, condition):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if condition():
            return True
        await anyio.sleep(0.02)
    return condition()


class Server:
    """The server under test, listening on an ephemeral loopback port."""

    def __init__(self, server, bash, root):
        for d in ["codex/rules", "home", "work", "outside"]:
            (root / d).mkdir(parents=True)
        (root / "codex/rules/a.rules").write_text(RULES)
        (root / "token").write_text(TOKEN + "\n")
        self.root = root
        self.work = (root / "work").resolve()
        self.log_path = root / "server.log"
        self.argv = [server, "--bash", bash, "--sandbox", "read-only", "--listen", "127.0.0.1:0",
                     "--auth-token-file", str(root / "token")]
        self.env = {"CODEX_HOME": str(root / "codex"), "HOME": str(root / "home"), "RUST_LOG": "info"}
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.work, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        deadline = time.monotonic() + 20
        while True:
            found = re.search(r"listening: MCP over Streamable HTTP at (http://\S+/mcp)", self.log())
            if found:
                self.url = found.group(1)
                break
            check(self.proc.poll() is None and time.monotonic() < deadline, f"the server never listened:\n{self.log()}")
            time.sleep(0.02)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self):
        self.proc.terminate()
        status = self.proc.wait(timeout=20)
        self.log_file.close()
        check(status == 0, f"the server exited with {status} after SIGTERM")


async def with_session(srv, body, answers=(), discover=False, token=TOKEN):
    asked = []
    answers = list(answers)

    async def on_elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action=answers.pop(0))

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(srv.url, http_client=http) as (read, write):
            async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
                if discover:
                    await session.discover()
                else:
                    await session.initialize()
                await body(session, asked)


async def session_mode(srv):
    work = srv.work

    async def body(session, asked):
        init = session.initialize_result
        check(init.server_info.name == "codex-exec-mcp-server", f"server info: {init}")
        tools = (await session.list_tools()).tools
        check([t.name for t in tools] == ["shell", "exec_command", "write_stdin", "kill_process", "list_processes"], f"tools: {tools}")

        data = decode(await session.call_tool("shell", {"command": "echo out; echo err >&2; exit 7", "workdir": str(work)}))
        check(data["exit_code"] == 7 and data["output"] == "out\nerr\n", f"echo: {data}")

        m = marker()
        data = decode(await session.call_tool(
            "shell", {"command": f"echo started; sleep 30.{m}", "workdir": str(work), "timeout_ms": 500}))
        check(data["timed_out"] and data["exit_code"] == 124 and data["output"] == "started\n", f"timeout: {data}")
        check(await eventually(5, lambda: not pids_with(m)), "the timed-out sleep survived")

        # Progress: the lines arrive while the command waits on a fifo, which
        # is fed once they have.
        fifo = srv.root / "outside" / "fifo"
        os.mkfifo(fifo)
        progress = []

        async def on_progress(value, total, message):
            progress.append(message or "")

        result = {}

        async def waiting():
            result["r"] = await session.call_tool(
                "shell", {"command": f"echo first-line; echo second-line; read x < {fifo}", "workdir": str(work),
                          "timeout_ms": 20000}, progress_callback=on_progress)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            check(await eventually(10, lambda: any("second-line" in p for p in progress)), f"progress: {progress}")
            with open(fifo, "w") as f:
                f.write("go\n")
        check(decode(result["r"])["output"] == "first-line\nsecond-line\n", f"progress call: {result}")

        # Cancellation: abandoning the call sends notifications/cancelled.
        m = marker()
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as tg:
                async def call():
                    await session.call_tool("shell", {"command": f"sleep 30.{m}", "workdir": str(work), "timeout_ms": 60000})

                tg.start_soon(call)
                check(await eventually(20, lambda: pids_with(m)), "the sleep never started")
                tg.cancel_scope.cancel()
        check(await eventually(5, lambda: not pids_with(m)), f"the cancelled sleep survived: {pids_with(m)}")

        data = decode(await session.call_tool("shell", {"command": "rm -f x; echo status=$?", "workdir": str(work)}))
        check(data["output"].startswith("Execution denied: ") and "keep it" in data["output"], f"forbidden: {data}")
        check(data["output"].endswith("status=1\n"), f"forbidden: {data}")

        target = work / "accepted"
        data = decode(await session.call_tool("shell", {"command": f"touch {target}", "workdir": str(work)}))
        check(data["exit_code"] == 0 and target.exists(), f"accepted: {data}")
        target = work / "declined"
        data = decode(await session.call_tool("shell", {"command": f"touch {target}", "workdir": str(work)}))
        check(data["output"] == "Execution denied: User declined execution\n" and not target.exists(), f"declined: {data}")
        check(len(asked) == 2 and asked[0].startswith("Allow agent to run `"), f"asked: {asked}")

    await with_session(srv, body, answers=["accept", "decline"])


async def stateless_mode(srv):
    work = srv.work

    async def body(session, asked):
        check(session.protocol_version == "2026-07-28", f"version: {session.protocol_version}")
        data = decode(await session.call_tool("shell", {"command": "echo modern", "workdir": str(work)}))
        check(data["output"] == "modern\n", f"echo: {data}")
        target = work / "modern"
        args = {"command": f"touch {target}; echo status=$?", "workdir": str(work), "timeout_ms": 20000}
        first = await session.call_tool("shell", args, allow_input_required=True)
        check(isinstance(first, types.InputRequiredResult), f"expected input required: {first}")
        (key, request), = first.input_requests.items()
        check(request.params.message.startswith("Allow agent to run `"), f"question: {request}")
        answer = {key: {"action": "accept", "content": {}}}
        data = decode(await session.call_tool("shell", args, input_responses=answer, request_state=first.request_state))
        check(data["output"] == "status=0\n" and target.exists(), f"accepted on retry: {data}")

    await with_session(srv, body, discover=True)


async def refusals(srv):
    work = srv.work
    target = work / "unauthorized"
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "shell", "arguments": {"command": f"touch {target}", "workdir": str(work)}}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as http:
        missing = await http.post(srv.url, json=call, headers=headers)
        check(missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer "), f"{missing}")
        wrong = await http.post(srv.url, json=call, headers={**headers, "authorization": "Bearer wrong-token-0123456789abcdef"})
        check(wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"], f"{wrong}")
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "py", "version": "0"}}}
        authorized = {**headers, "authorization": f"Bearer {TOKEN}"}
        foreign = await http.post(srv.url, json=init, headers={**authorized, "origin": "http://evil.example"})
        check(foreign.status_code == 403, f"foreign origin: {foreign}")
    check(not target.exists(), "a call ran without the token")
    # The SDK client with a wrong token fails to connect (it reports the
    # 401 as "Server returned an error response").
    try:
        await with_session(srv, lambda s, a: anyio.sleep(0), token="wrong-token-0123456789abcdef")
    except BaseException as e:  # an ExceptionGroup from the transport's task group
        check("error response" in repr(e), f"wrong token: {e!r}")
    else:
        raise AssertionError("connected with a wrong token")

    # A non-loopback address without a token is refused at start.
    r = subprocess.run([srv.argv[0], "--bash", srv.argv[2], "--listen", "0.0.0.0:0"], env=srv.env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(r.returncode == 2 and "refusing to listen on 0.0.0.0:0 without a token" in r.stderr, f"{r}")


async def main(server, bash):
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(server, bash, pathlib.Path(tmp))
        try:
            await session_mode(srv)
            await stateless_mode(srv)
            await refusals(srv)
            srv.stop()
        except BaseException:
            print(f"--- server stderr:\n{srv.log()}", file=sys.stderr)
            if srv.proc.poll() is None:
                srv.proc.kill()
            raise
    print("python http e2e: ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    anyio.run(main, os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
