"""F29, safe defaults on disk and on the wire: the secret file's mode is warned about,
the refusal to listen without a secret names the variable that sets one, and TLS is
set from the config file and the command line, mutual TLS standing in for the secret
off loopback.

The store's file modes are tested in ``tests/stores/test_file_modes.py`` and the
``docker://`` refusal in ``tests/transports/test_docker_listener.py``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import trustme
from structlog.testing import capture_logs

from actorwork import ActorSystem
from actorwork.cli.main import main
from actorwork.config import Config, load_config
from actorwork.errors import ConfigError, TransportError
from actorwork.messages import Ping, Pong
from actorwork.node import system_from_settings
from actorwork.topology import JobSystem, start_scheduler
from actorwork.transports.tcp import TCPTransport, client_context, server_context

ROOT = Path(__file__).resolve().parents[1]


def _non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback (skips the test if none)."""
    for probe in ("8.8.8.8", "10.255.255.255", "192.0.2.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))  # UDP: picks the route's source address, sends nothing
            except OSError:
                continue
            host = str(sock.getsockname()[0])
        if not ipaddress.ip_address(host).is_loopback and host != "0.0.0.0":
            return host
    pytest.skip("this machine has no IPv4 address other than loopback")


@pytest.fixture(scope="module")
def host() -> str:
    return _non_loopback_address()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --- the secret file -------------------------------------------------------------------


def test_a_secret_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    config_file = tmp_path / "app.toml"
    config_file.write_text(f'[system]\nsecret_file = "{secret}"\n')
    config = load_config(config_file, env={})

    os.chmod(secret, 0o644)
    with capture_logs() as logs:
        system = system_from_settings(config.system)
    assert system.options.secret == b"s3cret"  # used all the same
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [(w["event"], w["path"], w["mode"]) for w in warnings] == [
        ("secret_file_readable_by_others", str(secret), "0o644")
    ]

    for mode in (0o640, 0o604):
        os.chmod(secret, mode)
        with capture_logs() as logs:
            system_from_settings(config.system)
        assert [entry["mode"] for entry in logs] == [oct(mode)]

    os.chmod(secret, 0o600)
    with capture_logs() as logs:
        system_from_settings(config.system)
    assert logs == []


# --- the variable the refusal names ----------------------------------------------------


async def test_the_refusal_off_loopback_names_the_variable_that_sets_the_secret() -> None:
    with pytest.raises(ConfigError, match="not loopback, requires a shared secret") as refused:
        async with ActorSystem("exposed", listen="tcp://0.0.0.0:0"):
            pass
    named = re.findall(r"\bACTORWORK_[A-Z_]+", str(refused.value))
    assert named, str(refused.value)
    for variable in named:
        config = load_config(env={variable: "s3cret"})
        async with system_from_settings(config.system, listen="tcp://0.0.0.0:0") as system:
            assert system.options.secret == b"s3cret", variable


# --- TLS -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, a server certificate for ``host`` (key apart), two client
    certificates (one from the CA, one from a stranger CA; key inside)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client: Path
    stranger: Path


@pytest.fixture(scope="module")
def certs(host: str, tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    paths = Certificates(*(directory / name for name in ("ca", "server", "key", "pool", "x")))
    ca.cert_pem.write_to_path(str(paths.ca))
    server = ca.issue_cert(host, "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    server.private_key_pem.write_to_path(str(paths.server_key))
    ca.issue_cert("pool.example").private_key_and_cert_chain_pem.write_to_path(str(paths.client))
    other.issue_cert("pool.example").private_key_and_cert_chain_pem.write_to_path(
        str(paths.stranger)
    )
    return paths


def _mutual_server(certs: Certificates) -> TCPTransport:
    context = server_context(
        cert=str(certs.server_cert),
        key=str(certs.server_key),
        ca=str(certs.ca),
        require_client_cert=True,
    )
    return TCPTransport(server_ssl=context)


@pytest.mark.usefixtures("no_leaks")
async def test_mutual_tls_off_loopback_needs_no_secret(host: str, certs: Certificates) -> None:
    server = ActorSystem("mtls", listen=f"tcp://{host}:0", transport=_mutual_server(certs))
    async with server:
        assert server.address is not None
        async with ActorSystem("certified") as client:
            with_cert = client_context(cert=str(certs.client), ca=str(certs.ca))
            ref = await client.remote(
                server.address, "_system", transport=TCPTransport(client_ssl=with_cert)
            )
            assert await ref.ask(Ping(b"mutual"), timeout=10) == Pong(b"mutual")
        for cert in ("", str(certs.stranger)):  # no certificate; one the CA did not sign
            context = client_context(cert=cert, ca=str(certs.ca))
            async with ActorSystem("stranger") as client:
                with pytest.raises(TransportError, match="requires client certificates"):
                    await client.remote(
                        server.address, "_system", transport=TCPTransport(client_ssl=context)
                    )

    # TLS that lets any client in is no stand-in for the secret.
    one_way = server_context(cert=str(certs.server_cert), key=str(certs.server_key))
    with pytest.raises(ConfigError, match="requires a shared secret or TLS client certificates"):
        async with ActorSystem(
            "tls", listen=f"tcp://{host}:0", transport=TCPTransport(server_ssl=one_way)
        ):
            pass


def test_tls_files_that_cannot_be_loaded_are_named(tmp_path: Path, certs: Certificates) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=f"the TLS certificate {re.escape(repr(missing))}"):
        server_context(cert=missing)
    with pytest.raises(ConfigError, match=f"the TLS CA file {re.escape(repr(missing))}"):
        client_context(ca=missing)
    with pytest.raises(ConfigError, match="needs the CA that signs them"):
        server_context(cert=str(certs.client), require_client_cert=True)


def _tls_config(tmp_path: Path, address: str, tls: str) -> Config:
    config_file = tmp_path / f"app-{len(list(tmp_path.glob('app-*.toml')))}.toml"
    config_file.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "{address}"
store = "{tmp_path}/jobs.db"

[system.tls]
{tls}
"""
    )
    return load_config(config_file, env={})


async def test_a_scheduler_with_mutual_tls_from_the_config_admits_only_certified_clients(
    host: str, certs: Certificates, tmp_path: Path
) -> None:
    scheduler_config = _tls_config(
        tmp_path,
        f"tcp://{host}:0",
        f'cert = "{certs.server_cert}"\nkey = "{certs.server_key}"\n'
        f'ca = "{certs.ca}"\nrequire_client_cert = true',
    )
    assert scheduler_config.system.secret_bytes() is None
    async with AsyncExitStack() as stack:
        scheduler = await start_scheduler(stack, scheduler_config)
        address = scheduler.system.address
        assert address is not None
        assert address.startswith(f"tcp://{host}:")

        certified = _tls_config(tmp_path, address, f'cert = "{certs.client}"\nca = "{certs.ca}"')
        async with JobSystem(certified) as jobs:
            handle = await jobs.submit("add", {"x": 1, "y": 2})
            assert handle.created

        refused = (
            f'ca = "{certs.ca}"',  # no client certificate
            f'cert = "{certs.stranger}"\nca = "{certs.ca}"',  # one our CA did not sign
            # the right one, but the server's certificate is checked for another name
            f'cert = "{certs.client}"\nca = "{certs.ca}"\nserver_hostname = "elsewhere.example"',
        )
        for tls in refused:
            with pytest.raises(TransportError):
                async with JobSystem(_tls_config(tmp_path, address, tls)) as jobs:
                    await jobs.submit("add", {"x": 1, "y": 2})


def test_tls_settings_are_checked_when_loaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"system\.tls.*key = '/k.pem' needs cert"):
        _tls_config(tmp_path, "tcp://127.0.0.1:7400", 'key = "/k.pem"')
    with pytest.raises(ConfigError, match=r"system\.tls.*require_client_cert = true needs"):
        _tls_config(tmp_path, "tcp://127.0.0.1:7400", 'cert = "/c.pem"\nrequire_client_cert = true')
    config = load_config(
        env={
            "ACTORWORK_SYSTEM__TLS__CERT": "/c.pem",
            "ACTORWORK_SYSTEM__TLS__CA": "/ca.pem",
            "ACTORWORK_SYSTEM__TLS__REQUIRE_CLIENT_CERT": "true",
        }
    )
    assert (config.system.tls.cert, config.system.tls.require_client_cert) == ("/c.pem", True)
    with pytest.raises(ConfigError, match=r"listening on 'tcp://127\.0\.0\.1:0' with TLS needs"):
        system_from_settings(
            _tls_config(tmp_path, "tcp://127.0.0.1:7400", 'ca = "/ca.pem"').system,
            listen="tcp://127.0.0.1:0",
        )


# --- TLS on the command line -----------------------------------------------------------


def test_the_tls_options_override_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "app.toml"
    config_file.write_text('[system.tls]\nca = "/from-the-file.pem"\n')
    options = ["--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--tls-require-client-cert"]
    options += ["--tls-server-hostname", "scheduler.example"]
    assert main(["--config", str(config_file), *options, "config"]) == 0
    shown = msgspec.json.decode(capsys.readouterr().out)["system"]["tls"]
    assert shown == {
        "cert": "/c.pem",
        "key": "/k.pem",
        "ca": "/from-the-file.pem",
        "require_client_cert": True,
        "server_hostname": "scheduler.example",
    }

    assert main(["--config", str(config_file), "--tls-key", "/k.pem", "config"]) == 2
    assert "system.tls: key = '/k.pem' needs cert" in capsys.readouterr().err


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "ACTORWORK_LOG_LEVEL": "info"}


def _actorwork(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorwork", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_scheduler(host: str, certs: Certificates, tmp_path: Path) -> Iterator[Path]:
    """``actorwork scheduler`` on a non-loopback address, mutual TLS from its options only."""
    config = tmp_path / "app.toml"
    config.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "tcp://{host}:{_free_port(host)}"
store = "{tmp_path}/jobs.db"
"""
    )
    tls = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    tls += ["--tls-ca", str(certs.ca), "--tls-require-client-cert"]
    log = tmp_path / "scheduler.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "actorwork", "--config", str(config), *tls, "scheduler"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60  # a bound on a hang, not a measurement
        while "scheduler_listening" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the scheduler did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield config
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_scheduler_with_mutual_tls_from_the_command_line_admits_only_certified_clients(
    cli_scheduler: Path, certs: Certificates, tmp_path: Path
) -> None:
    config = ["--config", str(cli_scheduler)]
    certified = ["--tls-cert", str(certs.client), "--tls-ca", str(certs.ca)]
    done = _actorwork(*config, *certified, "submit", "add", '{"x": 1, "y": 2}', cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stdout.split()[1]
    shown = _actorwork(*config, *certified, "status", job_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"job {job_id}  work=add" in shown.stdout

    refused = _actorwork(*config, "--tls-ca", str(certs.ca), "status", job_id, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "actorwork: error: " in refused.stderr
    assert "requires client certificates" in refused.stderr
    assert "Traceback" not in refused.stderr
