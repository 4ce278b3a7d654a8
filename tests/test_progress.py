"""Progress bars draw only on a terminal; in a log they leave one line per phase."""

import io

from unigendet.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_phase():
    log = io.StringIO()
    assert list(progress_bar(range(50), desc="corpus", unit="pair", file=log)) == list(range(50))
    bar = progress_bar(total=30, desc="gduf", unit="step", file=log, initial=0)
    for _ in range(30):
        bar.set_postfix({"loss": "1.0"}, refresh=False)
        bar.update(1)
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("corpus: 50 pair in ") and lines[1].startswith("gduf: 30 step in ")


def test_a_terminal_gets_a_bar_and_disabled_means_silent():
    tty = Terminal()
    for _ in progress_bar(range(5), desc="detect", file=tty):
        pass
    assert "\r" in tty.getvalue() and "detect" in tty.getvalue()
    quiet = io.StringIO()
    for _ in progress_bar(range(5), desc="detect", file=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""
