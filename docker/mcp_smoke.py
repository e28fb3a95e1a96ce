#!/usr/bin/env python3
"""MCP smoke test of the container image: `docker run -i` the server with a
host directory mounted at /workspace and no network, then speak
newline-delimited JSON-RPC to it: initialize, notifications/initialized,
tools/list, and a `shell` call that writes a file into the workspace, which
is checked from the host. Then, as root, the usual first mistake: a
root-owned 0700 workspace mounted without `--user`, where the call's error
must name the workdir and the image's uid.

usage: mcp_smoke.py IMAGE [extra docker run args...]
Exit status 0 on success; on failure prints the exchange and the server's
stderr.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading

TIMEOUT = 60  # seconds per response; the first includes container start-up
UID = 65532  # the image's user


class Server:
    def __init__(self, argv):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.stderr = []
        self.log = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink):
        for line in stream:
            sink(line.decode("utf-8", "replace"))
        sink(None)

    def send(self, message):
        text = json.dumps(message)
        self.log.append(f"-> {text}")
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, id_, method, params):
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.fail(f"no answer to {method} within {TIMEOUT} s")
            if line is None:
                self.fail(f"server closed stdout before answering {method}")
            self.log.append(f"<- {line.rstrip()}")
            message = json.loads(line)
            if message.get("id") == id_ and "method" not in message:
                if "error" in message:
                    self.fail(f"{method} failed: {message['error']}")
                return message["result"]
            # A server-to-client request or notification: not expected here.

    def fail(self, why):
        self.proc.kill()
        self.proc.wait()
        print(f"FAIL: {why}", file=sys.stderr)
        print(f"command: {' '.join(self.argv)}", file=sys.stderr)
        print(f"status: {self.proc.returncode}", file=sys.stderr)
        print("exchange:\n  " + "\n  ".join(self.log), file=sys.stderr)
        print("server stderr:\n" + "".join(s for s in self.stderr if s), file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    image, extra = sys.argv[1], sys.argv[2:]
    workspace = tempfile.mkdtemp(prefix="mcp-smoke-")
    try:
        # The image runs as an unprivileged user: give it the workspace.
        if os.geteuid() == 0:
            os.chown(workspace, UID, UID)
        else:
            os.chmod(workspace, 0o777)
        argv = ["docker", "run", "-i", "--rm", "--network", "none", "-v", f"{workspace}:/workspace", *extra, image]
        server = Server(argv)
        init = server.request(
            1,
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcp-smoke", "version": "0"},
            },
        )
        if "tools" not in init.get("capabilities", {}):
            server.fail(f"no tools capability in {init}")
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = server.request(2, "tools/list", {})
        names = [t["name"] for t in tools.get("tools", [])]
        if "shell" not in names:
            server.fail(f"no shell tool in {names}")
        result = server.request(
            3,
            "tools/call",
            {
                "name": "shell",
                "arguments": {
                    "command": "echo 'written by the shell tool' > hello.txt && echo wrote",
                    "workdir": "/workspace",
                    "login": False,
                },
            },
        )
        if result.get("isError"):
            server.fail(f"shell call failed: {result}")
        outcome = result.get("structuredContent") or json.loads(result["content"][0]["text"])
        if outcome.get("exit_code") != 0 or "wrote" not in outcome.get("output", ""):
            server.fail(f"unexpected shell result {outcome}")
        path = os.path.join(workspace, "hello.txt")
        try:
            with open(path) as f:
                content = f.read()
        except OSError as e:
            server.fail(f"the shell call did not create {path}: {e}")
        if content != "written by the shell tool\n":
            server.fail(f"{path} holds {content!r}")
        server.proc.stdin.close()
        status = server.proc.wait(timeout=TIMEOUT)
        if status != 0:
            server.fail(f"server exited with {status} after stdin closed")
        print(f"ok: {image} answered initialize, tools/list and a shell call writing {path}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    inaccessible_workspace(image, extra)


def inaccessible_workspace(image, extra):
    """Without `--user`, a workspace only root may enter: the error says so."""
    if os.geteuid() != 0:
        print("skipped: the root-owned 0700 workspace case needs the tests to run as root")
        return
    workspace = tempfile.mkdtemp(prefix="mcp-smoke-0700-")
    try:
        os.chmod(workspace, 0o700)
        argv = ["docker", "run", "-i", "--rm", "--network", "none", "-v", f"{workspace}:/workspace", *extra, image]
        server = Server(argv)
        server.request(
            1,
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcp-smoke", "version": "0"},
            },
        )
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result = server.request(
            2,
            "tools/call",
            {"name": "shell", "arguments": {"command": "true", "workdir": "/workspace"}},
        )
        text = " ".join(c.get("text", "") for c in result.get("content", []))
        expected = f"workdir `/workspace` is not accessible to uid {UID} (mode 0700, owner 0)"
        if not result.get("isError") or expected not in text:
            server.fail(f"expected an error naming the workdir and the uid ({expected!r}), got {result}")
        server.proc.stdin.close()
        server.proc.wait(timeout=TIMEOUT)
        print(f"ok: a root-owned 0700 workspace without --user is named: {text.strip()}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
