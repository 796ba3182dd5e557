"""The synchronous client, shared by plain threads, as a web application would use it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from actorwork import JobFailed, SyncClient
from actorwork.config import Config, load_config
from actorwork.errors import ActorworkError, ConfigError
from tests.jobs import works


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "inline"
modules = ["tests.jobs.works"]

[scheduler]
address = "inproc://sync-{tmp_path.name}"
store = "{tmp_path}/jobs.db"
retry_base = 0.01
retry_cap = 0.05

[pools.main]
size = 4
outbox = "{tmp_path}/outbox"
"""
    )
    return load_config(path, env={})


def test_threads_share_one_client_without_an_event_loop(tmp_path: Path) -> None:
    assert threading.current_thread() is threading.main_thread()
    with SyncClient(_config(tmp_path)) as client:

        def request(n: int) -> list[int]:  # one web request: submit, then wait
            handles = [client.submit(works.add, works.Pair(n, k)) for k in range(5)]
            return [handle.result(timeout=30) for handle in handles]

        with ThreadPoolExecutor(8) as threads:
            answers = list(threads.map(request, range(8)))
        assert answers == [[n + k for k in range(5)] for n in range(8)]
        handles = client.submit_many(works.add, [works.Pair(1, k) for k in range(20)])
        assert [h.result(timeout=30) for h in handles] == [1 + k for k in range(20)]
        assert handles[0].status() == "succeeded"
        assert client.get(handles[0].id).status == "succeeded"


def test_a_failed_job_raises_in_the_calling_thread(tmp_path: Path) -> None:
    with SyncClient(_config(tmp_path)) as client:
        handle = client.submit(works.boom, "no")
        with pytest.raises(JobFailed) as failed:
            handle.result(timeout=30)
        assert failed.value.job.status == "dead"
        assert handle.wait(timeout=30).attempt == 3  # retries=2: three attempts


def test_a_closed_client_says_so(tmp_path: Path) -> None:
    client = SyncClient(_config(tmp_path))
    client.close()
    client.close()  # idempotent
    with pytest.raises(ActorworkError, match="closed"):
        client.submit(works.noop)


def test_a_job_system_that_cannot_start_raises_in_the_constructor(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "jobs.db").mkdir()  # the store's path is a directory
    with pytest.raises(ActorworkError):
        SyncClient(config)
    assert not [t for t in threading.enumerate() if t.name == "actorwork-sync-client"]


def test_bad_config_is_a_config_error_before_any_thread(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[jobs]\ntopology = 'sideways'\n")
    with pytest.raises(ConfigError, match="sideways"):
        SyncClient(load_config(tmp_path / "bad.toml", env={}))
