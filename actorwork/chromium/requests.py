"""What to render: the payloads of the Chromium works, and what they return.

Plain msgspec Structs, importable without pyppeteer, so a client can build and submit
them on a machine without Chromium::

    PdfRequest(html="<h1>Invoice</h1>", margins=Margins(top="2cm"), wait_for_ready=True)
    PngRequest(url="https://example.org/", width=1024)
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["PAPER_FORMATS", "Margins", "PageRequest", "PdfRequest", "PngRequest", "Rendered"]

#: Paper formats Chromium's printing knows by name (``format``, case-insensitive).
PAPER_FORMATS = ("letter", "legal", "tabloid", "ledger", "a0", "a1", "a2", "a3", "a4", "a5", "a6")

WaitUntil = Literal["load", "domcontentloaded", "networkidle0", "networkidle2"]


class Margins(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Page margins as CSS lengths (``"1cm"``, ``"0.5in"``, ``"20px"``)."""

    top: str = "1cm"
    right: str = "1cm"
    bottom: str = "1cm"
    left: str = "1cm"


class PageRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A page to load (exactly one of ``url`` and ``html``) and when it counts as ready.

    The page is loaded until ``wait_until`` (``url``) or its ``load`` event (``html``),
    within ``load_timeout`` seconds. With ``wait_for_ready`` the work then waits up to
    ``ready_timeout`` seconds for the page to call ``window.actorworkReady()`` (the
    function exists from the page's first script on); if it does not, the job fails
    with :class:`~actorwork.errors.PageNotReady`. ``width`` and ``height`` are the
    viewport in CSS pixels; ``name`` is the artifact's file name.
    """

    url: str = ""
    html: str = ""
    wait_for_ready: bool = False
    ready_timeout: float = 30.0
    wait_until: WaitUntil = "load"
    load_timeout: float = 30.0
    width: int = 1280
    height: int = 800
    name: str = ""

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.html):
            raise ValueError("give exactly one of url and html")
        for key in ("ready_timeout", "load_timeout"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} = {getattr(self, key)!r} must be greater than 0")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"viewport {self.width}x{self.height} must be at least 1x1")
        if "/" in self.name or "\\" in self.name or self.name in {".", ".."}:
            raise ValueError(f"name must be a plain file name, got {self.name!r}")

    @property
    def where(self) -> str:
        """The page, for messages: its URL, or the HTML document's size."""
        return repr(self.url) if self.url else f"<html document, {len(self.html)} characters>"


class PdfRequest(PageRequest, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A page printed to PDF: paper ``format`` (or ``paper_width`` and ``paper_height``
    as CSS lengths when ``format`` is empty), orientation, margins, backgrounds, scale.
    ``prefer_css_page_size`` lets the page's ``@page { size: ... }`` win."""

    name: str = "page.pdf"
    format: str = "A4"
    paper_width: str = ""
    paper_height: str = ""
    landscape: bool = False
    margins: Margins = Margins()
    print_background: bool = True
    scale: float = 1.0
    prefer_css_page_size: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format and self.format.lower() not in PAPER_FORMATS:
            raise ValueError(f"format {self.format!r} is not one of: {', '.join(PAPER_FORMATS)}")
        if not self.format and not (self.paper_width and self.paper_height):
            raise ValueError("without a format, give paper_width and paper_height")
        if not 0.1 <= self.scale <= 2.0:
            raise ValueError(f"scale = {self.scale!r} must be between 0.1 and 2")

    def pdf_options(self) -> dict[str, object]:
        """The options of pyppeteer's ``Page.pdf``."""
        options: dict[str, object] = {
            "landscape": self.landscape,
            "printBackground": self.print_background,
            "scale": self.scale,
            "preferCSSPageSize": self.prefer_css_page_size,
            "margin": msgspec.to_builtins(self.margins),
        }
        if self.format:
            options["format"] = self.format
        else:
            options["width"], options["height"] = self.paper_width, self.paper_height
        return options


class PngRequest(PageRequest, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A page as a PNG: the whole page (``full_page``) or the viewport only;
    ``omit_background`` makes a page without a background transparent."""

    name: str = "page.png"
    full_page: bool = True
    omit_background: bool = False


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """What a Chromium work returns; the bytes themselves are the job's artifact."""

    artifact: str
    media_type: str
    size: int
    page: str
