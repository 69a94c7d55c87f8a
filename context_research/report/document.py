"""The report as a list of sections, rendered to Markdown (report.md) and HTML (report.html).

A section holds text paragraphs, tables (pandas) and figures (files beside the report), in order.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

FLOAT_FORMAT = ".4g"


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Image:
    path: str  # relative to the report
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Image] = field(default_factory=list)


def markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=FLOAT_FORMAT, missingval="NaN")


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += ([f"*{block.caption}*", ""] if block.caption else []) + [markdown_table(block.frame), ""]
            elif isinstance(block, Image):
                lines += [f"![{block.caption}]({block.path})", "", f"*{block.caption}*", ""]
            else:
                lines += [block, ""]
    return "\n".join(lines)


def html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="NaN", classes="data",
                         float_format=lambda x: format(x, FLOAT_FORMAT))


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table.data{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em;display:block;overflow-x:auto}
table.data th,table.data td{border-bottom:1px solid #ddd;padding:0.25em 0.6em;text-align:right}
table.data th{background:#f4f4f4}figure{margin:1em 0 2em}figure img{max-width:100%}
figcaption,.caption{color:#555;font-size:0.9em}"""


def to_html(title: str, sections: list[Section]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                if block.caption:
                    parts.append(f"<p class='caption'>{html.escape(block.caption)}</p>")
                parts.append(html_table(block.frame))
            elif isinstance(block, Image):
                parts.append(f"<figure><img src='{html.escape(block.path)}' alt='{html.escape(block.caption)}'>"
                             f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
