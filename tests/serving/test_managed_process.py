"""A managed server process: healthy when its health URL answers, one line and the log's last lines
when it exits or never becomes healthy, and its whole process group gone after stop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from context_research.serving.servers.process import ManagedServer, ServerFailed, running_servers
from tests.serving.scripted_server import free_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its parent is gone as far as we care
        return stat.read().split(") ", 1)[1][0] != "Z"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def http_server_forking_a_child(port: int, child_pid_file: str) -> list[str]:
    """A server on `port` that forks a child process first (as vLLM forks its engine core)."""
    return python(f"""
        import http.server, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({child_pid_file!r}, "w").write(str(child.pid))
        class Health(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers()
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", {port}), Health).serve_forever()
    """)


def test_a_healthy_server_and_every_process_it_forked_stop_together(tmp_path):
    port = free_port()
    server = ManagedServer("test server", http_server_forking_a_child(port, str(tmp_path / "child")),
                           tmp_path / "server.log", f"http://127.0.0.1:{port}/health", stop_timeout_s=5)
    server.start(startup_timeout_s=60)
    pids = [server.pid, int((tmp_path / "child").read_text())]
    assert server.running() and all(alive(pid) for pid in pids) and server in running_servers()
    assert os.getpgid(pids[1]) == server.pid  # the child is in the server's process group
    server.stop()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids) and server not in running_servers()
    server.stop()  # idempotent


def test_a_server_that_exits_fails_with_one_line_and_the_logs_last_lines(tmp_path):
    server = ManagedServer("test server", python("print('loading weights'); print('CUDA out of memory'); exit(3)"),
                           tmp_path / "server.log", f"http://127.0.0.1:{free_port()}/health")
    with pytest.raises(ServerFailed) as failure:
        server.start(startup_timeout_s=60)
    first, *rest = str(failure.value).splitlines()
    assert first.startswith("test server exited with code 3 before it was healthy")
    assert first.endswith(f"log: {tmp_path / 'server.log'}")
    assert rest[-2:] == ["  | loading weights", "  | CUDA out of memory"]
    assert not server.running() and server not in running_servers()


def test_a_server_never_healthy_is_stopped_after_the_timeout(tmp_path):
    server = ManagedServer("test server", python("import time; time.sleep(600)"), tmp_path / "server.log",
                           f"http://127.0.0.1:{free_port()}/health", stop_timeout_s=5)
    with pytest.raises(ServerFailed, match=r"was not healthy within 2 s \(http://127.0.0.1:\d+/health never"):
        server.start(startup_timeout_s=2)
    assert server.process is None and server not in running_servers()


def test_a_server_dies_with_the_harness_even_when_the_harness_is_killed(tmp_path):
    """SIGKILL reaches no handler: parent_watch makes the kernel stop the server (Linux)."""
    port = free_port()
    harness = subprocess.Popen(python(f"""
        import time
        from pathlib import Path
        from context_research.serving.servers.process import ManagedServer
        server = ManagedServer("s", {http_server_forking_a_child(port, str(tmp_path / "child"))!r},
                               Path({str(tmp_path / "server.log")!r}), "http://127.0.0.1:{port}/health")
        server.start(60)
        print(server.pid, flush=True)
        time.sleep(600)
    """), stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    pids = [int(harness.stdout.readline()), int((tmp_path / "child").read_text())]
    assert all(alive(pid) for pid in pids)
    harness.kill()
    harness.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
