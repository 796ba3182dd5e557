"""The greeter example: one program, three config files, the actor moves between processes.

Only the configured address changes between the runs; ``examples/greeter/main.py``
is the same program each time. With ``inproc://`` the greeter answers from the
client's own process; with ``unix://`` and ``tcp://`` it answers from the process
that ``actorwork serve`` started.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "greeter"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_client(config: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "main.py"), str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"hello, ada from pid (\d+)", done.stdout)
    assert match, done.stdout
    return int(match.group(1)), done.stdout


def client_pid_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "hello, ada" in line)


@pytest.mark.parametrize("transport", ["inproc", "unix", "tcp"])
def test_same_code_moves_with_the_address(transport: str, tmp_path: Path) -> None:
    path = os.pathsep.join(filter(None, [str(EXAMPLE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    config = EXAMPLE / f"{transport}.toml"
    # Keep parallel runs apart: same scheme, a private socket path or port.
    if transport == "unix":
        env["ACTORWORK_ACTORS__GREETER__ADDRESS"] = f"unix://{tmp_path / 'greeter.sock'}"
    elif transport == "tcp":
        env["ACTORWORK_ACTORS__GREETER__ADDRESS"] = f"tcp://127.0.0.1:{free_port()}"
    if transport == "inproc":
        _pid, stdout = run_client(config, env)
        assert "(this process)" in client_pid_line(stdout)
        return
    host = subprocess.Popen(
        [sys.executable, "-m", "actorwork", "--config", str(config), "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stderr is not None
        deadline = time.monotonic() + 60
        for line in host.stderr:  # wait for the host to say it is serving
            if "serving" in line:
                break
            assert time.monotonic() < deadline, "host did not start"
        pid, stdout = run_client(config, env)
        assert pid == host.pid
        assert "(another process)" in client_pid_line(stdout)
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)
        if host.stderr is not None:
            host.stderr.close()
    assert host.returncode == 0
