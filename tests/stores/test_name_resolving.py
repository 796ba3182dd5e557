"""One name resolving to several: a client given ``tcp://schedulers.test:PORT``, a name
with three IP addresses, tries each of them and reaches the Scheduler that leads.

No DNS server and no change to the machine's ``/etc/hosts``: the client is a real
process in a user and mount namespace of its own (``unshare -rm``) where a hosts file
of the test's is bound over ``/etc/hosts``, naming 127.0.0.2, 127.0.0.3 and 127.0.0.4;
glibc's resolver returns all three. Schedulers, each a real process on one SQLite
store, listen at 127.0.0.4 (started first, so it leads) and 127.0.0.3 (standby);
nothing listens at 127.0.0.2, a host that is down. The resolver puts 127.0.0.2 first
and the leader last, so the client finds it only by trying past the first two.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.node import system_from_settings
from tests.stores.fleet import REPO, Fleet

pytestmark = pytest.mark.slow

NAME = "schedulers.test"

#: Run in the namespace: submit through the one name, print where the leader was found.
CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from actorwork.client import Client
    from actorwork.config import load_config
    from actorwork.node import system_from_settings

    async def main(config_path: str, address: str) -> None:
        config = load_config(config_path)
        async with (
            system_from_settings(config.system, name="named-client") as system,
            Client(system, address, connect_timeout=60) as client,
        ):
            handle = await client.submit("add", {"x": 2, "y": 3})
            value = await handle.result(timeout=120)
            print(json.dumps({"value": value, "leader": client._ref.address,
                              "follows": client.follows_leader}))

    asyncio.run(main(*sys.argv[1:]))
    """
)


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


async def test_a_name_with_several_addresses_is_tried_at_each(tmp_path: Path) -> None:
    if not namespaces_work():
        pytest.skip("unshare -rm (user and mount namespaces) is not allowed here")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.{n} {NAME}\n" for n in (2, 3, 4)))
    cluster = Fleet(tmp_path, str(tmp_path / "jobs.db"), hosts=("127.0.0.4", "127.0.0.3"))
    port = cluster.addresses[0].rsplit(":", 1)[1]
    try:
        cluster.start("scheduler-0", listen=cluster.addresses[0])
        config = load_config(cluster.config)
        async with AsyncExitStack() as stack:  # the first started leads: wait for it
            system = await stack.enter_async_context(system_from_settings(config.system))
            client = await stack.enter_async_context(Client(system, cluster.addresses[0]))
            await client.ping(timeout=120)
        cluster.start("scheduler-1", listen=cluster.addresses[1])
        cluster.start("pool")
        script = (
            f"mount --bind {hosts} /etc/hosts && "
            f'exec "$0" -c "$1" {cluster.config} tcp://{NAME}:{port}'
        )
        with anyio.fail_after(300):  # a guard against a hang, not a measure
            done = await anyio.run_process(
                ["unshare", "-rm", "sh", "-c", script, sys.executable, CLIENT],
                cwd=REPO,
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert answer == {"value": 5, "leader": cluster.addresses[0], "follows": True}
    finally:
        cluster.stop_all()
