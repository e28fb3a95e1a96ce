#!/usr/bin/env python3
"""MCP-over-HTTP smoke test of a container image: `docker run` the server
as a sidecar listening on 0.0.0.0:8080 inside the container (published on
127.0.0.1 only), with a bearer token from a mounted secret file and a host
directory mounted at /workspace; then, from the host, over HTTP: the
liveness endpoint, a request without the token (401), initialize,
tools/list, and a `shell` call whose effect or output is checked; then
`docker stop` (SIGTERM), which must end the container with status 0.

usage: http_smoke.py IMAGE [--tools] [-- SERVER_ARG...]
  --tools  the image has real tools: the call runs `ls | grep | sed` over
           files the test put in the workspace (docker/tools/Dockerfile)
  after --, more arguments for the server
Uses only the Python standard library. Exit status 0 on success; on
failure prints the exchange and the container's log.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TIMEOUT = 60  # seconds: container start-up, and each response
UID = 65532  # the image's user
TOKEN = "docker-smoke-token-0123456789abcdef"


class Smoke:
    def __init__(self, image, server_args):
        self.image = image
        self.server_args = server_args
        self.container = None
        self.log = []

    def fail(self, why):
        print(f"FAIL: {why}", file=sys.stderr)
        print("exchange:\n  " + "\n  ".join(self.log), file=sys.stderr)
        if self.container:
            logs = subprocess.run(["docker", "logs", self.container], capture_output=True, text=True)
            print("container log:\n" + logs.stdout + logs.stderr, file=sys.stderr)
            subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)
        sys.exit(1)

    def http(self, method, path, body=None, token=TOKEN, session=None):
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if session:
            headers["mcp-session-id"] = session
            headers["mcp-protocol-version"] = "2025-06-18"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        self.log.append(f"-> {method} {path} {json.dumps(body) if body is not None else ''}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                status, headers, text = response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as e:
            status, headers, text = e.code, e.headers, e.read().decode()
        self.log.append(f"<- {status} {text.strip()[:2000]}")
        return status, headers, text

    def rpc(self, id_, method, params, session=None):
        status, headers, text = self.http(
            "POST", "/mcp", {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}, session=session)
        if status != 200:
            self.fail(f"{method}: HTTP {status}")
        for message in messages(text):
            if message.get("id") == id_ and "method" not in message:
                if "error" in message:
                    self.fail(f"{method} failed: {message['error']}")
                return headers, message["result"]
        self.fail(f"no answer to {method}")

    def run(self, tools):
        workspace = tempfile.mkdtemp(prefix="mcp-http-smoke-")
        secrets = tempfile.mkdtemp(prefix="mcp-http-secrets-")
        try:
            with open(os.path.join(secrets, "token"), "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(os.path.join(secrets, "token"), 0o644)
            os.chmod(secrets, 0o755)
            if tools:
                for name in ["notes.txt", "todo.txt", "build.log"]:
                    with open(os.path.join(workspace, name), "w") as f:
                        f.write(name + "\n")
            # The image runs as an unprivileged user: give it the workspace.
            if os.geteuid() == 0:
                os.chown(workspace, UID, UID)
            else:
                os.chmod(workspace, 0o777)
            argv = ["docker", "run", "-d", "-p", "127.0.0.1::8080",
                    "-v", f"{workspace}:/workspace", "-v", f"{secrets}:/run/secrets:ro",
                    self.image, "--listen", "0.0.0.0:8080", "--auth-token-file", "/run/secrets/token",
                    *self.server_args]
            self.log.append("$ " + " ".join(argv))
            started = subprocess.run(argv, capture_output=True, text=True)
            if started.returncode != 0:
                self.fail(f"docker run failed: {started.stderr}")
            self.container = started.stdout.strip()
            port = subprocess.run(["docker", "port", self.container, "8080/tcp"], capture_output=True, text=True)
            address = port.stdout.split()[0] if port.stdout.split() else ""
            if not address.startswith("127.0.0.1:"):
                self.fail(f"unexpected published address {port.stdout!r} {port.stderr!r}")
            self.base = f"http://{address}"
            self.exchange(workspace, tools)
            # SIGTERM: stops accepting, ends the calls, exits 0.
            subprocess.run(["docker", "stop", "-t", "20", self.container], capture_output=True, check=True)
            code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", self.container],
                                  capture_output=True, text=True).stdout.strip()
            if code != "0":
                self.fail(f"the container exited with {code} after docker stop")
            subprocess.run(["docker", "rm", self.container], capture_output=True)
            print(f"ok: {self.image} over HTTP at {self.base}/mcp: 401 without the token, initialize, "
                  f"tools/list, a shell call, exit 0 on docker stop")
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
            shutil.rmtree(secrets, ignore_errors=True)

    def exchange(self, workspace, tools):
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                status, _, text = self.http("GET", "/healthz", token=None)
                if status == 200 and text == "ok\n":
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                self.fail("the liveness endpoint never answered")
            time.sleep(0.2)
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "http-smoke", "version": "0"}}
        call = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        status, headers, _ = self.http("POST", "/mcp", call, token=None)
        if status != 401 or not headers.get("www-authenticate", "").startswith("Bearer"):
            self.fail(f"no token: HTTP {status}, WWW-Authenticate {headers.get('www-authenticate')!r}")
        status, _, _ = self.http("POST", "/mcp", call, token="wrong-token-0123456789abcdef")
        if status != 401:
            self.fail(f"wrong token: HTTP {status}")
        headers, result = self.rpc(1, "initialize", init)
        session = headers.get("mcp-session-id")
        if not session or "tools" not in result.get("capabilities", {}):
            self.fail(f"initialize: session {session!r}, result {result}")
        status, _, _ = self.http("POST", "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, session=session)
        if status != 202:
            self.fail(f"notifications/initialized: HTTP {status}")
        _, tools_list = self.rpc(2, "tools/list", {}, session=session)
        names = [t["name"] for t in tools_list.get("tools", [])]
        if names != ["shell", "exec_command", "write_stdin", "kill_process", "list_processes"]:
            self.fail(f"tools: {tools_list}")
        if tools:
            command, expect = r"ls | grep '\.txt$' | sed 's/\.txt$/: found/'", "notes: found\ntodo: found\n"
        else:
            command, expect = "echo 'written over HTTP' > hello.txt && echo wrote", "wrote\n"
        _, result = self.rpc(3, "tools/call", {"name": "shell", "arguments": {
            "command": command, "workdir": "/workspace", "login": False}}, session=session)
        outcome = result.get("structuredContent") or {}
        if result.get("isError") or outcome.get("exit_code") != 0 or outcome.get("output") != expect:
            self.fail(f"shell call {command!r}: expected {expect!r}, got {result}")
        if not tools:
            path = os.path.join(workspace, "hello.txt")
            try:
                with open(path) as f:
                    content = f.read()
            except OSError as e:
                self.fail(f"the shell call did not create {path}: {e}")
            if content != "written over HTTP\n":
                self.fail(f"{path} holds {content!r}")
        status, _, _ = self.http("DELETE", "/mcp", session=session)
        if status not in (200, 204):
            self.fail(f"DELETE: HTTP {status}")


def messages(text):
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            try:
                found.append(json.loads(line[5:]))
            except ValueError:
                pass
    return found


def main():
    args = sys.argv[1:]
    server_args = []
    if "--" in args:
        server_args = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    if not args or args[0].startswith("-") or any(a != "--tools" for a in args[1:]):
        sys.exit(__doc__)
    Smoke(args[0], server_args).run("--tools" in args[1:])


if __name__ == "__main__":
    main()
