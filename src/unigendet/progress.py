"""Progress bars that draw only on a terminal.

On a terminal `progress_bar(...)` is a tqdm bar. When the stream is a file or a pipe (a log, CI), a
redrawn bar would write a carriage-return line per update; there it counts silently and writes one
line when the phase ends: `desc: N unit in S s`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any


class _Quiet:
    """The part of tqdm's interface callers use, with one summary line at close."""

    def __init__(self, iterable: Iterable | None, desc: str, unit: str, file: IO[str], enabled: bool):
        self.iterable, self.desc, self.unit, self.file, self.enabled = iterable, desc, unit, file, enabled
        self.n, self.t0, self.closed = 0, time.monotonic(), False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.enabled and self.n:
            print(f"{self.desc}: {self.n} {self.unit} in {time.monotonic() - self.t0:.0f} s", file=self.file,
                  flush=True)

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def progress_bar(iterable: Iterable | None = None, *, desc: str = "", unit: str = "it", total: int | None = None,
             enabled: bool = True, file: IO[str] | None = None, **tqdm_options: Any):
    """A tqdm bar on a terminal; elsewhere one line at the end (none when `enabled` is False)."""
    file = file if file is not None else sys.stderr
    if enabled and is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, unit=unit, total=total, file=file, dynamic_ncols=True, **tqdm_options)
    return _Quiet(iterable, desc, unit, file, enabled)
