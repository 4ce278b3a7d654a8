"""The README's set-up: the Makefile's system-package step and the one list it reads."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from unigendet.corpus.sources import DEBIAN_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
LISTED = [x.strip() for x in (ROOT / "debian-packages.txt").read_text().splitlines() if x.strip() and x[0] != "#"]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def test_the_photo_packages_are_on_the_makefiles_list():
    assert set(DEBIAN_PACKAGES) <= set(LISTED) and "chromium" in LISTED


def run_system(tmp_path, uid: int, sudo_ok: bool, extra: tuple[str, ...] = ()):
    """`make system` with stand-ins for dpkg-query (nothing installed), id, sudo and apt-get."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "apt.log"
    stubs = {"dpkg-query": "exit 1", "id": f"echo {uid}", "sudo": f'[ "$2" = true ] && exit {0 if sudo_ok else 1}; '
             'shift; exec "$@"', "apt-get": f'echo "$@" >> {log}'}
    for name, body in stubs.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SYSTEM_PACKAGES", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = f"{bin_}:{os.environ['PATH']}"
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "system", *extra], env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, (log.read_text() if log.exists() else "")


def test_system_installs_every_listed_package_as_root(tmp_path):
    proc, apt = run_system(tmp_path, uid=0, sudo_ok=False)
    assert proc.returncode == 0, proc.stderr
    assert "update" in apt and f"install -y -qq --no-install-recommends {' '.join(LISTED)}" in apt


def test_system_uses_sudo_when_allowed(tmp_path):
    proc, apt = run_system(tmp_path, uid=1000, sudo_ok=True)
    assert proc.returncode == 0, proc.stderr
    assert "install" in apt


def test_system_stops_with_one_line_without_root_or_sudo(tmp_path):
    proc, apt = run_system(tmp_path, uid=1000, sudo_ok=False)
    assert proc.returncode != 0 and apt == ""
    line = [x for x in proc.stderr.splitlines() if x.startswith("make: missing")]
    assert len(line) == 1 and f"sudo apt-get install {' '.join(LISTED)}" in line[0]
    assert "SYSTEM_PACKAGES=skip" in line[0]


def test_system_opt_out_installs_nothing(tmp_path):
    proc, apt = run_system(tmp_path, uid=1000, sudo_ok=False, extra=("SYSTEM_PACKAGES=skip",))
    assert proc.returncode == 0 and apt == "" and "not installing" in proc.stdout
