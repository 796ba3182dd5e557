"""How the benchmarks print: a table on stdout (aligned text for a terminal, or
Markdown) under a line about the host, and everything else on stderr."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from typing import TypeVar

import anyio
import structlog

import actorwork

RowT = TypeVar("RowT")


def format_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    *,
    numeric: Collection[int],
    markdown: bool,
) -> str:
    """``rows`` of cells under ``columns``; the ``numeric`` columns align right."""
    if markdown:
        align = ["---:" if i in numeric else "---" for i in range(len(columns))]
        lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.extend(f"\n*{text}*" for text in notes)
        return "\n".join(lines)
    table = [list(columns), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = []
    for k, line in enumerate(table):
        lines.append(
            "  ".join(
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                for i, cell in enumerate(line)
            ).rstrip()
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"note: {text}" for text in notes)
    return "\n".join(lines)


def format_rows(
    columns: Sequence[str],
    rows: Sequence[RowT],
    cells: Callable[[RowT], Sequence[str]],
    notes: Iterable[tuple[str, str]],
    *,
    numeric: Collection[int],
    markdown: bool,
) -> str:
    """:func:`format_table` of ``cells(row)`` for each row; ``notes`` are ``(where, note)``
    pairs, each distinct non-empty note printed once as ``where: note``."""
    seen = dict.fromkeys(f"{where}: {note}" for where, note in notes if note)
    return format_table(
        columns, [cells(row) for row in rows], list(seen), numeric=numeric, markdown=markdown
    )


def table_arguments(
    parser: argparse.ArgumentParser, choices: Sequence[str], what: str
) -> argparse.ArgumentParser:
    """Add the options every table benchmark takes: --quick, --markdown, --repeat and
    --only (a comma-separated subset of ``choices``, which are ``what``s)."""
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--repeat", type=int, help="runs per cell, best kept (default 3, quick 1)")
    parser.add_argument(
        "--only",
        default=",".join(choices),
        help=f"comma-separated {what}s (default {','.join(choices)})",
    )
    return parser


def parse_table_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, choices: Sequence[str], what: str
) -> argparse.Namespace:
    """Parse ``argv``; ``only`` becomes the chosen ``choices`` in table order. An unknown
    choice or a --repeat below 1 ends the program with the parser's usage error."""
    args = parser.parse_args(argv)
    given = args.only.split(",")
    unknown = sorted(set(given) - set(choices))
    if unknown:
        parser.error(f"--only: unknown {what} {', '.join(unknown)} (known: {', '.join(choices)})")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    args.only = [choice for choice in choices if choice in given]
    return args


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``; None when either was not measured (or the baseline is 0)."""
    if value is None or not baseline:
        return None
    return value / baseline


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0.5 for the median) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def host_line() -> str:
    """What ran the benchmark: actorwork's and Python's versions, the system, the CPUs."""
    return (
        f"actorwork {actorwork.__version__}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )


def quiet_logs() -> None:
    """Warnings and worse, to stderr: stdout carries the table."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 at stderr for a while, so that children started meanwhile inherit that."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def quick_main(
    argv: Sequence[str] | None,
    description: str,
    run: Callable[[bool], Awaitable[list[list[str]]]],
    columns: Sequence[str],
    *,
    numeric: Collection[int],
    notes: Sequence[str] = (),
) -> int:
    """The whole program of a benchmark that takes --quick and --markdown: the rows of
    ``await run(quick)`` printed as a table under ``columns``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer jobs")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    quiet_logs()
    rows = anyio.run(run, args.quick)
    print(format_table(columns, rows, notes, numeric=numeric, markdown=args.markdown))
    return 0
