"""The dashboard in a real browser (F21 and issue 14): headless Chromium opens it against
a live inline job system served by uvicorn on loopback, and everything below happens
without a reload: a mark set on ``window`` at the start is still there at the end.

Jobs proceed when the test opens their gates (anyio Events), never after a sleep; the
browser is waited on for conditions (``waitForFunction``). The screenshots the README
shows are taken here, from the current code: into ``docs/`` when the environment sets
``ACTORWORK_SCREENSHOTS=docs``, otherwise beside the test run's other files (so a run
of the suite leaves the checkout as it found it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from actorwork.chromium import Chromium
from actorwork.config import ChromiumSettings
from actorwork.schedules import schedule
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs, hosted
from actorwork.testing.web import served
from actorwork.web import Security, create_app
from tests.web import dashboard_works
from tests.web.dashboard_works import HOSTILE, Steps, gate

DOCS = (
    Path(__file__).resolve().parents[2] / "docs"
    if os.environ.get("ACTORWORK_SCREENSHOTS") == "docs"
    else Path(tempfile.mkdtemp(prefix="actorwork-screenshots-"))
)
#: Upper bound on any wait (a hang fails the test; nothing is timed).
DEADLINE = 60.0
TOKEN = "t" * 32
READ_TOKEN = "r" * 32
#: The address of the PDF viewer built into Chromium (an extension of fixed id).
PDF_VIEWER = "chrome-extension://mhjfbmdgcfjbbpaeojofohoefgiehjai/"

pytestmark = pytest.mark.slow


@pytest.fixture
async def jobs() -> AsyncIterator[InlineJobs]:
    async with hosted(job_system(["tests.web.dashboard_works"])) as system:
        yield system


@pytest.fixture
async def base(jobs: InlineJobs) -> AsyncIterator[str]:
    async with hosted(served(create_app(jobs.client))) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-chromium.sh)")
    async with Chromium(ChromiumSettings(mode="local")) as chromium:
        yield chromium


async def _open(browser: Any, url: str) -> Any:
    """A page at ``url``, marked so that a reload would show (the mark would be gone)."""
    page = await browser.new_page()
    await page.setViewport({"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    await page.goto(url)
    await page.evaluate("() => { window.__mark = 'not reloaded'; }")
    return page


async def _page_of_finished(
    jobs: InlineJobs, browser: Any, base: str, work: str, payload: Any
) -> Any:
    """The page of a job of ``work`` submitted with ``payload``, once it finished."""
    handle = await jobs.client.submit(work, payload)
    await handle.wait(timeout=DEADLINE)
    return await _open(browser, f"{base}/#/job/{handle.id}")


async def _until(page: Any, condition: str, *args: Any) -> None:
    """Wait until the JavaScript function ``condition`` returns true in the page."""
    try:
        await page.waitForFunction(condition, {"timeout": DEADLINE * 1000}, *args)
    except Exception as exc:  # pyppeteer's TimeoutError: say what the page showed
        text = await page.evaluate("() => document.body.innerText")
        raise AssertionError(f"{condition} never held; page: {text[:2000]!r}") from exc


async def _not_reloaded(page: Any) -> None:
    assert await page.evaluate("() => window.__mark") == "not reloaded"
    assert page.errors == []


async def _until_live(page: Any) -> None:
    """Wait until the page's subscription is confirmed (events after this reach it)."""
    await _until(page, "() => document.body.dataset.live === 'subscribed'")


async def test_a_running_jobs_progress_and_log_lines_arrive_live(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    handle = await jobs.client.submit("dash.steps", Steps("live", 3))
    page = await _open(browser, f"{base}/#/job/{handle.id}")
    await _until(page, "() => document.querySelector('#job-status')?.textContent === 'running'")
    await _until_live(page)
    for step, percent in ((1, "33"), (2, "67")):
        gate(f"live/{step}").set()
        await _until(
            page,
            """(percent, line) => document.querySelector('.bar').dataset.value === percent
                && document.querySelector('#log').textContent.includes(line)""",
            percent,
            f"step {step} of 3",
        )
    assert await page.evaluate("() => document.querySelector('#job-status').textContent") == (
        "running"
    )
    await page.screenshot({"path": str(DOCS / "dashboard-job.png")})
    gate("live/3").set()
    await _until(page, "() => document.querySelector('#job-status').textContent === 'succeeded'")
    assert await page.evaluate("() => document.querySelector('.bar').dataset.value") == "100"
    await _not_reloaded(page)


async def test_a_dead_job_is_retried_from_the_dead_page_and_succeeds(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    dashboard_works.BROKEN["now"] = True
    handle = await jobs.client.submit("dash.fragile", "invoices")
    assert (await handle.wait(timeout=DEADLINE)).status == "dead"
    page = await _open(browser, f"{base}/#/dead")
    row = f"tr[data-job='{handle.id}']"
    await _until(page, f'() => document.querySelector("{row} .job-retry") !== null')
    await page.screenshot({"path": str(DOCS / "dashboard-dead.png")})
    dashboard_works.BROKEN["now"] = False
    async with jobs.client.events(job_id=handle.id, kinds=["job.succeeded"]) as events:
        await page.click(f"{row} .job-retry")
        with anyio.fail_after(DEADLINE):
            await anext(aiter(events))
    assert (await handle.view()).status == "succeeded"
    await _until(page, f'() => document.querySelector("{row}") === null')  # left the list
    await _not_reloaded(page)


async def test_a_queue_is_paused_and_resumed(jobs: InlineJobs, base: str, browser: Any) -> None:
    await (await jobs.client.submit("dash.fragile", "warm")).wait(timeout=DEADLINE)
    page = await _open(browser, f"{base}/#/queues")
    button = "tr[data-queue='default'] .queue-toggle"
    await _until(page, f"() => document.querySelector(\"{button}\")?.textContent === 'pause'")
    await page.click(button)
    await _until(page, f"() => document.querySelector(\"{button}\")?.textContent === 'resume'")
    assert [q.paused for q in await jobs.client.queues() if q.name == "default"] == [True]
    await page.click(button)
    await _until(page, f"() => document.querySelector(\"{button}\")?.textContent === 'pause'")
    assert [q.paused for q in await jobs.client.queues() if q.name == "default"] == [False]
    await _not_reloaded(page)


async def test_a_script_in_a_log_line_shows_as_text_and_inline_script_is_blocked(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    page = await _page_of_finished(jobs, browser, base, "dash.hostile", "<b>label</b>")
    await _until(
        page, "(text) => document.querySelector('#log')?.textContent.includes(text)", HOSTILE[0]
    )
    found = await page.evaluate(
        """() => ({pwned: window.__pwned ?? null,
                   elements: document.querySelectorAll('#log script, #log img').length})"""
    )
    assert found == {"pwned": None, "elements": 0}
    # The Content-Security-Policy refuses inline script even when a page adds it itself.
    blocked = await page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation',
                event => resolve(event.violatedDirective), {once: true});
            const script = document.createElement('script');
            script.textContent = 'window.__inline = 1';
            document.body.append(script);
        })"""
    )
    assert blocked.startswith("script-src")
    assert await page.evaluate("() => window.__inline ?? null") is None


async def test_a_websocket_from_a_foreign_origin_is_refused(base: str, browser: Any) -> None:
    socket = base.replace("http://", "ws://") + "/ws"
    attempt = """(url) => new Promise(resolve => {
        const ws = new WebSocket(url);
        ws.onopen = () => { ws.close(); resolve('open'); };
        ws.onclose = () => resolve('refused');
    })"""

    async def foreign_page(request: Request) -> HTMLResponse:
        return HTMLResponse("<p>another site</p>")

    async with served(Starlette(routes=[Route("/", foreign_page)])) as foreign:
        page = await browser.new_page()
        await page.goto(foreign.replace("127.0.0.1", "localhost") + "/")
        assert await page.evaluate(attempt, socket) == "refused"
    own = await _open(browser, f"{base}/")
    assert await own.evaluate(attempt, socket) == "open"


async def test_the_overview_charts_throughput(jobs: InlineJobs, base: str, browser: Any) -> None:
    page = await _open(browser, f"{base}/")
    await _until(page, "() => document.querySelector('tr[data-queue]') !== null")
    await _until_live(page)
    dashboard_works.BROKEN["now"] = True
    for index in range(12):
        await (await jobs.client.submit("dash.fragile", f"report {index}")).wait(timeout=DEADLINE)
    dashboard_works.BROKEN["now"] = False
    for index in range(24):
        await (await jobs.client.submit("dash.fragile", f"invoice {index}")).wait(timeout=DEADLINE)
    await _until(page, "() => /[1-9][0-9.]* succeeded\\/s/.test(document.body.innerText)")
    await page.screenshot({"path": str(DOCS / "dashboard-overview.png")})
    await _not_reloaded(page)


@pytest.mark.parametrize(("token", "role"), [(TOKEN, "full"), (READ_TOKEN, "read")])
async def test_with_a_token_the_browser_signs_in_and_a_read_only_one_sees_no_buttons(
    jobs: InlineJobs, browser: Any, token: str, role: str
) -> None:
    security = Security(token=TOKEN, read_token=READ_TOKEN)
    async with served(create_app(jobs.client, security=security)) as base:
        page = await _open(browser, f"{base}/#/queues")
        await _until(page, "() => document.querySelector('form.login input') !== null")
        assert await page.evaluate("() => document.querySelector('tr[data-queue]')") is None
        await page.type("form.login input", token)
        await page.click("form.login button")
        # The session cookie opens the API and the WebSocket alike.
        await _until(page, "() => document.querySelector('tr[data-queue=default]') !== null")
        await _until_live(page)
        assert await page.evaluate("() => document.cookie.includes('actorwork_session')") is False
        buttons = await page.evaluate("() => document.querySelectorAll('main button').length")
        assert (buttons > 0) == (role == "full")
        await _not_reloaded(page)


async def test_the_pools_page_shows_a_busy_workers_job_and_its_progress_live(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    page = await _open(browser, f"{base}/#/pools")
    await _until(page, "() => document.querySelector('section.pool') !== null")
    await _until_live(page)
    handle = await jobs.client.submit("dash.steps", Steps("pool", 2))
    row = f"section.pool a[href='#/job/{handle.id}']"
    await _until(page, f'() => document.querySelector("{row}") !== null')
    gate("pool/1").set()
    await _until(
        page,
        f"""() => document.querySelector("{row}").closest('tr')
                     .querySelector('.bar').dataset.value === '50'""",
    )
    worker = f"""() => document.querySelector("{row}").closest('tr').children[3].textContent"""
    await _until(page, f"() => ({worker})().startsWith('default.worker-')")
    gate("pool/2").set()
    await handle.wait(timeout=DEADLINE)
    await _until(page, f'() => document.querySelector("{row}") === null')
    await _not_reloaded(page)


async def test_a_schedule_is_disabled_enabled_and_run_now(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    await jobs.client.add_schedule(
        schedule("nightly", "dash.fragile", cron="0 3 * * *", payload="nightly")
    )
    page = await _open(browser, f"{base}/#/schedules")
    row = "tr[data-schedule=nightly]"
    await _until(page, f"() => document.querySelector('{row}')?.textContent.includes('enabled')")
    fires = await page.evaluate(
        f"() => document.querySelector('{row}').children[5].childElementCount"
    )
    assert fires == 3
    await page.click(f"{row} button")  # the first: disable
    await _until(page, f"() => document.querySelector('{row}').textContent.includes('disabled')")
    assert [view.schedule.enabled for view in await jobs.client.schedules()] == [False]
    await page.click(f"{row} button")  # enable again
    await _until(page, f"() => document.querySelector('{row}').textContent.includes('enabled')")
    async with jobs.client.events(kinds=["job.submitted"], work="dash.fragile") as events:
        await page.click(f"{row} button:last-child")  # run now
        with anyio.fail_after(DEADLINE):
            submitted = await anext(aiter(events))
    assert (await jobs.client.get(submitted.job_id)).work == "dash.fragile"
    await _not_reloaded(page)


async def test_a_workflows_tree_is_drawn_live_from_one_of_its_jobs_pages(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    dashboard_works.BROKEN["now"] = False
    flow = await jobs.client.submit_workflow(dashboard_works.report, "wf-live")
    fetch = f"{flow}:report.fetch"
    page = await _open(browser, f"{base}/#/job/{fetch}")
    await _until(page, "() => document.querySelector('a.workflow-link') !== null")
    await page.click("a.workflow-link")
    node = "(path) => document.querySelector(`tr[data-path='${path}'] .status`)?.textContent"
    await _until(page, f"() => ({node})('report.fetch') === 'running'")
    await _until_live(page)
    assert await page.evaluate("() => location.hash") == f"#/workflows/{flow}"
    await page.screenshot({"path": str(DOCS / "dashboard-workflow.png")})
    gate("wf-live/1").set()
    await _until(page, f"() => ({node})('report.publish') === 'succeeded'")
    assert await page.evaluate(f"() => ({node})('report.fetch')") == "succeeded"
    await _until(
        page, "() => document.querySelector('#workflow-status').textContent === 'succeeded'"
    )
    took = "() => document.querySelector(\"tr[data-path='report.fetch'] .took\").textContent"
    assert (await page.evaluate(took)).endswith(" s")
    await _not_reloaded(page)


async def test_retry_of_a_failed_workflow_from_its_page_reruns_only_the_failed_node(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    dashboard_works.BROKEN["now"] = True
    gate("wf-retry/1").set()
    flow = await jobs.client.submit_workflow(dashboard_works.report, "wf-retry")
    page = await _open(browser, f"{base}/#/workflows/{flow}")
    await _until(page, "() => document.querySelector('.workflow-retry') !== null")
    assert await page.evaluate("() => document.querySelector('#workflow-status').textContent") == (
        "failed"
    )
    dashboard_works.BROKEN["now"] = False
    await page.click(".workflow-retry")
    await _until(
        page, "() => document.querySelector('#workflow-status').textContent === 'succeeded'"
    )
    tree = await jobs.client.workflow(flow)
    assert {n.path: (n.status, n.attempts) for n in tree.nodes} == {
        "report.fetch": ("succeeded", 1),
        "report.charts": ("succeeded", 1),
        "report.charts.bar": ("succeeded", 1),
        "report.charts.pie": ("succeeded", 1),
        "report.publish": ("succeeded", 2),
    }
    runs = dashboard_works.RUNS
    assert [runs[name] for name in ("steps/wf-retry", "steps/wf-retry-bar", "wf-retry")] == [
        1,
        1,
        2,
    ]
    await _not_reloaded(page)


async def test_a_read_only_session_sees_no_buttons_on_a_workflows_page(
    jobs: InlineJobs, browser: Any
) -> None:
    dashboard_works.BROKEN["now"] = True
    gate("wf-read/1").set()
    flow = await jobs.client.submit_workflow(dashboard_works.report, "wf-read")
    security = Security(token=TOKEN, read_token=READ_TOKEN)
    async with served(create_app(jobs.client, security=security)) as base:
        page = await _open(browser, f"{base}/#/workflows/{flow}")
        await _until(page, "() => document.querySelector('form.login input') !== null")
        await page.type("form.login input", READ_TOKEN)
        await page.click("form.login button")
        await _until(
            page, "() => document.querySelector('#workflow-status')?.textContent === 'failed'"
        )
        assert await page.evaluate("() => document.querySelectorAll('main button').length") == 0
        await _not_reloaded(page)


async def test_a_pdf_artifacts_view_link_opens_it_in_chromiums_pdf_viewer(
    jobs: InlineJobs, base: str, browser: Any
) -> None:
    page = await _page_of_finished(jobs, browser, base, "dash.pdf", "Quarterly report")
    link = ".artifacts a[target=_blank]"
    await _until(page, f'() => document.querySelector("{link}") !== null')
    href = await page.evaluate(f'() => document.querySelector("{link}").href')
    assert href.endswith("/artifacts/report.pdf?view=1")
    await page.click(link)
    # The tab the link opened shows the PDF (not a download), in the viewer Chromium
    # ships as a built-in extension: its frame appears as a target of its own.
    with anyio.fail_after(DEADLINE):
        while True:
            urls = {target.url for target in page.browser.targets()}
            if href in urls and any(url.startswith(PDF_VIEWER) for url in urls):
                break
            await anyio.sleep(0.05)
    [tab] = [t for t in page.browser.targets() if t.url == href and t.type == "page"]
    shown = await (await tab.page()).evaluate("() => document.contentType")
    assert shown == "application/pdf"
    await _not_reloaded(page)
