"""A real ``actorwork api`` process: answers over loopback (HTTP and its WebSocket),
refuses to start off it without a token, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx
import pytest
import websockets

from tests.web.process import free_port, serving, start

pytestmark = pytest.mark.slow


def test_a_real_api_process_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path) as (base, logs):
        assert httpx.get(f"{base}/queues").status_code == 200
        submitted = httpx.post(f"{base}/jobs", json={"work": "noop"})
        assert submitted.status_code == 201
        job_id = submitted.json()["job_id"]
        for _ in range(300):
            job = httpx.get(f"{base}/jobs/{job_id}").json()["job"]
            if job["status"] == "succeeded":
                break
            time.sleep(0.05)
        assert job["status"] == "succeeded"
        assert "actorwork_jobs_finished_total" in httpx.get(f"{base}/metrics").text
    (err,) = logs
    assert "pool_drained" in err  # the job system stopped in order
    assert "Traceback" not in err


async def test_a_real_api_process_pushes_events_over_its_websocket(tmp_path: Path) -> None:
    with serving(tmp_path) as (base, _):
        async with websockets.connect(base.replace("http://", "ws://") + "/ws") as ws:
            subscribe = {"op": "subscribe", "sub": "s", "filter": {"kinds": ["job.succeeded"]}}
            await ws.send(json.dumps(subscribe))
            with anyio.fail_after(30):
                assert json.loads(await ws.recv()) == {"op": "subscribed", "sub": "s"}
                async with httpx.AsyncClient(base_url=base) as http:
                    job_id = (await http.post("/jobs", json={"work": "noop"})).json()["job_id"]
                frame = json.loads(await ws.recv())
    assert frame["op"] == "events"
    assert [(e["type"], e["job_id"]) for e in frame["events"]] == [("job.succeeded", job_id)]


def test_off_loopback_without_a_token_it_refuses_to_start(tmp_path: Path) -> None:
    process = start(
        tmp_path, "--address", f"0.0.0.0:{free_port()}", env={"ACTORWORK_API_TOKEN": ""}
    )
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # it started after all: stop it before failing
            process.kill()
            process.communicate()
    assert process.returncode == 2
    assert "'0.0.0.0:" in err
    assert "token" in err


def test_off_loopback_with_a_token_file_it_requires_the_token(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s" * 32 + "\n")
    port = free_port()
    process = start(tmp_path, "--address", f"0.0.0.0:{port}", "--token-file", str(secret))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/jobs")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.status_code == 401
        authorized = httpx.get(
            f"http://127.0.0.1:{port}/jobs", headers={"authorization": "Bearer " + "s" * 32}
        )
        assert authorized.status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=60)
