"""Pages rendered by real Chromium through an inline job system, local and in a container."""

from __future__ import annotations

import io
import struct

import pypdf

from actorwork.chromium import PdfRequest, PngRequest
from actorwork.messages import JobView
from tests.chromium.conftest import OpenJobs

# Two pages of words; the page says it is ready only after a script has written the
# second page, so a PDF printed before the signal would lack "zebra".
READY_PAGE = """<!doctype html>
<html><head><style>
  body { font-family: sans-serif; }
  .next { page-break-before: always; }
</style></head>
<body>
  <h1>Quarterly report for aardvark</h1>
  <p>The first page says hello.</p>
  <div id="later" class="next"></div>
  <script>
    console.log("report script started");
    setTimeout(() => {
      document.getElementById("later").textContent = "The second page says zebra.";
      console.warn("second page written");
      window.actorworkReady();
    }, 200);
  </script>
</body></html>
"""

NEVER_READY = "<!doctype html><p>This page never says it is ready.</p>"


def _artifact(view: JobView, name: str) -> bytes:
    assert view.result is not None
    [artifact] = [a for a in view.result.artifacts if a.name == name]
    return artifact.data


def _log_texts(view: JobView) -> list[tuple[str, str, str]]:
    assert view.result is not None
    return [
        (line.level, line.text, str(line.fields.get("text", line.fields.get("error", ""))))
        for line in view.result.logs
    ]


async def test_a_page_that_signals_readiness_is_printed_to_pdf(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        request = PdfRequest(html=READY_PAGE, wait_for_ready=True, name="report.pdf")
        handle = await jobs.submit("chromium.pdf", request)
        rendered = await handle.result(timeout=120)
        view = await handle.view()
    assert view.status == "succeeded"
    data = _artifact(view, "report.pdf")
    assert data.startswith(b"%PDF-")
    assert rendered == {
        "artifact": "report.pdf",
        "media_type": "application/pdf",
        "size": len(data),
        "page": request.where,
    }
    pdf = pypdf.PdfReader(io.BytesIO(data))
    assert len(pdf.pages) == 2
    first, second = (page.extract_text() for page in pdf.pages)
    assert "Quarterly report for aardvark" in first
    assert "hello" in first
    assert "zebra" in second


async def test_console_messages_and_page_errors_are_in_the_jobs_logs(
    open_jobs: OpenJobs,
) -> None:
    page = READY_PAGE.replace("</body>", "<script>undefinedFunction();</script></body>")
    async with open_jobs() as jobs:
        view = await (
            await jobs.submit("chromium.pdf", PdfRequest(html=page, wait_for_ready=True))
        ).wait(timeout=120)
    assert view.status == "succeeded"
    logs = _log_texts(view)
    assert ("info", "console", "report script started") in logs
    assert ("warning", "console", "second page written") in logs
    [error] = [text for level, event, text in logs if event == "page_error"]
    assert "undefinedFunction is not defined" in error


async def test_a_page_that_never_signals_fails_the_job_naming_timeout_and_page(
    open_jobs: OpenJobs,
) -> None:
    url = "data:text/html,<p>silent</p>"
    async with open_jobs() as jobs:
        silent_html = await jobs.submit(
            "chromium.pdf", PdfRequest(html=NEVER_READY, wait_for_ready=True, ready_timeout=0.5)
        )
        silent_url = await jobs.submit(
            "chromium.png", PngRequest(url=url, wait_for_ready=True, ready_timeout=0.5)
        )
        html_view = await silent_html.wait(timeout=120)
        url_view = await silent_url.wait(timeout=120)
    # A verdict of the page, not an accident: failed at once, not retried.
    assert (html_view.status, html_view.attempt) == ("failed", 1)
    assert html_view.error == (
        f"PageNotReady: page <html document, {len(NEVER_READY)} characters> did not call "
        "window.actorworkReady() within its ready_timeout of 0.5 s"
    )
    assert (url_view.status, url_view.attempt) == ("failed", 1)
    assert url_view.error == (
        f"PageNotReady: page {url!r} did not call window.actorworkReady() "
        "within its ready_timeout of 0.5 s"
    )
    assert html_view.result is not None
    assert html_view.result.artifacts == ()


async def test_a_full_page_png_is_as_tall_as_the_page(open_jobs: OpenJobs) -> None:
    tall = "<!doctype html><body style='margin:0'><div style='height:3000px'>tall</div></body>"
    async with open_jobs() as jobs:
        full = await jobs.submit("chromium.png", PngRequest(html=tall, width=640, height=480))
        viewport = await jobs.submit(
            "chromium.png",
            PngRequest(html=tall, width=640, height=480, full_page=False, name="top.png"),
        )
        full_view = await full.wait(timeout=120)
        viewport_view = await viewport.wait(timeout=120)
    assert _png_size(_artifact(full_view, "page.png")) == (640, 3000)
    assert _png_size(_artifact(viewport_view, "top.png")) == (640, 480)


async def test_page_size_margins_and_orientation_reach_the_pdf(open_jobs: OpenJobs) -> None:
    words = "<!doctype html><p>Letter landscape with wide margins.</p>"
    async with open_jobs() as jobs:
        letter = await jobs.submit(
            "chromium.pdf",
            {"html": words, "format": "Letter", "landscape": True, "margins": {"left": "3in"}},
        )
        custom = await jobs.submit(
            "chromium.pdf",
            {"html": words, "format": "", "paper_width": "10cm", "paper_height": "15cm"},
        )
        letter_view = await letter.wait(timeout=120)
        custom_view = await custom.wait(timeout=120)
    [page] = pypdf.PdfReader(io.BytesIO(_artifact(letter_view, "page.pdf"))).pages
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (792, 612)
    assert "Letter landscape" in page.extract_text()
    [page] = pypdf.PdfReader(io.BytesIO(_artifact(custom_view, "page.pdf"))).pages
    # 10 cm x 15 cm is 283.5 x 425.2 points (1/72 in); Chromium rounds to whole points.
    assert abs(float(page.mediabox.width) - 283.5) <= 1
    assert abs(float(page.mediabox.height) - 425.2) <= 1


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height
