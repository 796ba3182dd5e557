"""How the benchmarks print their tables: aligned text for a terminal, or Markdown."""

from __future__ import annotations

from collections.abc import Collection, Sequence


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
