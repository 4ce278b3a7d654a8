"""The files the web page and the triage report are made of, read from the package: each page's
HTML, and the script both use to draw a verdict (`verdict.js`), inlined where a page names it."""

from __future__ import annotations

from importlib import resources

SHARED_SCRIPT = "<!--verdict.js-->"  # where a page takes the shared script


def asset(name: str) -> str:
    return resources.files("unigendet.apps").joinpath(name).read_text()


def with_shared_script(html: str) -> str:
    """`html` with the shared script inlined at its marker."""
    if SHARED_SCRIPT not in html:
        raise ValueError(f"the page has no {SHARED_SCRIPT} marker")
    return html.replace(SHARED_SCRIPT, f"<script>\n{asset('verdict.js')}</script>", 1)
