"""F21, the API half: tokens, read-only tokens, Origin and Host."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs, hosted
from actorwork.web import Security, create_app
from actorwork.web.security import decide

TOKEN = "t" * 32
READ = "r" * 32
BASE = "http://127.0.0.1:7480"


@pytest.fixture
async def jobs() -> AsyncIterator[InlineJobs]:
    async with hosted(job_system(["tests.jobs.works"])) as system:
        yield system


def _client(jobs: InlineJobs, security: Security, **headers: str) -> httpx.AsyncClient:
    app = create_app(jobs.client, security=security)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE, headers=headers)


async def test_with_a_token_a_request_without_it_is_401(jobs: InlineJobs) -> None:
    async with _client(jobs, Security(token=TOKEN)) as http:
        reply = await http.get("/jobs")
        assert reply.status_code == 401
        assert reply.json()["field"] == "authorization"
        assert (
            await http.get("/jobs", headers={"authorization": "Bearer wrong"})
        ).status_code == 401
        ok = await http.get("/jobs", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


async def test_a_read_only_token_reads_but_cannot_change(jobs: InlineJobs) -> None:
    security = Security(token=TOKEN, read_token=READ)
    async with _client(jobs, security, authorization=f"Bearer {READ}") as http:
        assert (await http.get("/queues")).status_code == 200
        reply = await http.post("/jobs", json={"work": "noop"})
        assert reply.status_code == 403
        assert reply.json() == {
            "error": "a read-only token allows GET and HEAD only",
            "field": "method",
            "value": "POST",
        }
    async with _client(jobs, security, authorization=f"Bearer {TOKEN}") as http:
        assert (await http.post("/jobs", json={"work": "noop"})).status_code == 201


async def test_a_foreign_origin_cannot_change_state(jobs: InlineJobs) -> None:
    async with _client(jobs, Security()) as http:
        reply = await http.post("/queues/default/pause", headers={"origin": "https://evil.example"})
        assert reply.status_code == 403
        assert reply.json()["value"] == "https://evil.example"
        assert (await jobs.client.queues())[0].paused is False
        same = await http.post("/queues/default/pause", headers={"origin": BASE})
        assert same.status_code == 200
        # Reads are not state-changing: a foreign Origin may GET (the browser hides it).
        assert (
            await http.get("/queues", headers={"origin": "https://evil.example"})
        ).status_code == 200


async def test_a_host_not_allowed_cannot_change_state(jobs: InlineJobs) -> None:
    async with _client(jobs, Security()) as http:
        reply = await http.post("/jobs", json={"work": "noop"}, headers={"host": "evil.example"})
        assert reply.status_code == 403
        assert reply.json()["field"] == "host"
    async with _client(jobs, Security(allowed_hosts=("jobs.internal",))) as http:
        reply = await http.post(
            "/jobs", json={"work": "noop"}, headers={"host": "jobs.internal:7480"}
        )
        assert reply.status_code == 201


def test_short_tokens_and_a_read_token_alone_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Security(token="short")
    with pytest.raises(ValueError, match="needs a token"):
        Security(read_token=READ)


def test_decide_names_a_null_origin() -> None:
    refusal = decide(Security(), "POST", {"host": "127.0.0.1:7480", "origin": "null"})
    assert refusal is not None
    assert (refusal.status, refusal.value) == (403, "null")
    # A foreign Host is refused on reads too: a DNS name rebound to loopback must not
    # make another site's page same-origin with the API.
    refusal = decide(Security(), "GET", {"host": "evil.example"})
    assert refusal is not None
    assert (refusal.status, refusal.field) == (403, "host")
