"""F21, the dashboard half over HTTP: its page and headers, the login that trades a
token for a session cookie, and the CSRF token on every change a browser makes.

The browser itself (escaping, CSP enforced, live updates) is in
``tests/web/test_dashboard_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs, hosted
from actorwork.web import Security, create_app
from actorwork.web.pages import DASHBOARD_DIR
from actorwork.web.security import CSRF_COOKIE, SESSION_COOKIE

TOKEN = "t" * 32
READ = "r" * 32
BASE = "http://127.0.0.1:7480"
CHANGE = "/queues/default/pause"


@pytest.fixture
async def jobs() -> AsyncIterator[InlineJobs]:
    async with hosted(job_system(["tests.jobs.works"])) as system:
        yield system


def _client(jobs: InlineJobs, security: Security | None = None) -> httpx.AsyncClient:
    app = create_app(jobs.client, security=security)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE)


async def test_the_page_has_no_inline_script_and_a_strict_policy(jobs: InlineJobs) -> None:
    async with _client(jobs) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", page.text, re.S)
        assert scripts == [""]  # one module, loaded from its file
        assert 'src="dashboard/app.js"' in page.text  # relative: works under any prefix
        assert CSRF_COOKIE in page.cookies
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        for path in sorted(DASHBOARD_DIR.iterdir()):
            served = await http.get(f"/dashboard/{path.name}")
            assert served.status_code == 200, path.name
            assert served.content == path.read_bytes()
        # The API's JSON carries the same headers.
        assert (await http.get("/queues")).headers["x-frame-options"] == "DENY"


def test_no_dashboard_script_parses_markup() -> None:
    """Everything shown comes from jobs: it goes in as text, never as HTML."""
    for path in DASHBOARD_DIR.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"


async def test_a_change_carrying_the_dashboard_cookie_needs_its_csrf_token(
    jobs: InlineJobs,
) -> None:
    async with _client(jobs) as http:
        csrf = (await http.get("/")).cookies[CSRF_COOKIE]
        refused = await http.post(CHANGE)
        assert refused.status_code == 403
        assert refused.json()["field"] == "x-csrf-token"
        wrong = await http.post(CHANGE, headers={"x-csrf-token": "forged"})
        assert (wrong.status_code, wrong.json()["value"]) == (403, "forged")
        ok = await http.post(CHANGE, headers={"x-csrf-token": csrf})
        assert ok.status_code == 200
        assert ok.json()["queue"]["paused"] is True
    async with _client(jobs) as plain:  # a script without the dashboard's cookies
        assert (await plain.post("/queues/default/resume")).status_code == 200


async def test_a_browser_signs_in_with_the_token_for_an_httponly_session(
    jobs: InlineJobs,
) -> None:
    async with _client(jobs, Security(token=TOKEN, read_token=READ)) as http:
        assert (await http.get("/")).status_code == 200  # the page holds no data
        assert (await http.get("/session")).status_code == 401
        http.headers["x-csrf-token"] = csrf = http.cookies[CSRF_COOKIE]
        assert (await http.post("/login", json={"token": "x" * 32})).status_code == 401
        signed = await http.post("/login", json={"token": TOKEN})
        assert signed.json() == {"role": "full"}
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert TOKEN not in signed.headers["set-cookie"]  # the cookie is not the token
        assert (await http.get("/session")).json() == {"role": "full"}
        assert (await http.get("/queues")).status_code == 200
        del http.headers["x-csrf-token"]
        assert (await http.post(CHANGE)).status_code == 403  # no CSRF token
        assert (await http.post(CHANGE, headers={"x-csrf-token": csrf})).status_code == 200
        await http.post("/logout", headers={"x-csrf-token": csrf})
        assert SESSION_COOKIE not in http.cookies
        assert (await http.get("/queues")).status_code == 401


async def test_a_read_only_session_reads_and_is_refused_changes(jobs: InlineJobs) -> None:
    async with _client(jobs, Security(token=TOKEN, read_token=READ)) as http:
        csrf = (await http.get("/")).cookies[CSRF_COOKIE]
        login = await http.post("/login", json={"token": READ}, headers={"x-csrf-token": csrf})
        assert login.json() == {"role": "read"}
        assert (await http.get("/session")).json() == {"role": "read"}
        refused = await http.post(CHANGE, headers={"x-csrf-token": csrf})
        assert (refused.status_code, refused.json()["field"]) == (403, "method")
        http.cookies.set(SESSION_COOKIE, "0" * 64)
        assert (await http.get("/queues")).status_code == 401


async def test_bearer_clients_need_no_csrf_token(jobs: InlineJobs) -> None:
    async with _client(jobs, Security(token=TOKEN)) as http:
        reply = await http.post(CHANGE, headers={"authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200


async def test_a_foreign_host_gets_no_page_and_no_data(jobs: InlineJobs) -> None:
    async with _client(jobs) as http:
        for path in ("/", "/jobs", "/dashboard/app.js"):
            reply = await http.get(path, headers={"host": "rebound.example"})
            assert (reply.status_code, reply.json()["field"]) == (403, "host")


async def test_mounted_under_a_prefix_the_cookies_belong_to_it(jobs: InlineJobs) -> None:
    parent = Starlette(routes=[Mount("/actorwork", app=create_app(jobs.client))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(parent), base_url=BASE) as http:
        page = await http.get("/actorwork/")
        assert page.status_code == 200
        assert "path=/actorwork" in page.headers["set-cookie"].lower()
        assert (await http.get("/actorwork/dashboard/app.js")).status_code == 200
        csrf = page.cookies[CSRF_COOKIE]
        assert (await http.post("/actorwork" + CHANGE)).status_code == 403
        ok = await http.post("/actorwork" + CHANGE, headers={"x-csrf-token": csrf})
        assert ok.status_code == 200


async def test_an_artifact_is_shown_in_place_only_as_a_type_that_runs_no_script(
    jobs: InlineJobs,
) -> None:
    handle = await jobs.client.submit("artifact", "report.pdf")
    await handle.wait(timeout=60)
    view = await handle.view()
    assert view.result is not None
    (artifact,) = view.result.artifacts
    assert artifact.media_type == "application/pdf"
    url = f"/jobs/{handle.id}/artifacts/report.pdf"
    async with _client(jobs) as http:
        shown = await http.get(url, params={"view": "1"})
        assert shown.headers["content-disposition"].startswith("inline")
        assert shown.headers["content-type"] == "application/pdf"
        downloaded = await http.get(url)
        assert downloaded.headers["content-disposition"].startswith("attachment")
