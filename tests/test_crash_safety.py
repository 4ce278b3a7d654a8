"""Writers that a kill must not corrupt: a feature-cache build or a `data build` killed midway
(SIGKILL) leaves nothing that reads as whole, and the rerun finishes with the same result as an
uninterrupted build."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

BUILD = """
import sys, time
import numpy as np
from unigendet.data.readers import read_source
from unigendet_train import views
from unigendet_train.forensic_config import ForensicConfig
from unigendet_train.forensic_features import ViewFeatures

views.SAVE_EVERY = 8
recs = read_source(sys.argv[1], strict=True)[:48]
cfg = ForensicConfig(data=sys.argv[1], cache=sys.argv[2], backbones="residual-stats", side=64)
image = ViewFeatures.image
def slowly(self, *a):  # slow enough to be killed between saves
    time.sleep(float(sys.argv[4]))
    return image(self, *a)
ViewFeatures.image = slowly
np.save(sys.argv[3], ViewFeatures(cfg)(recs, 2, augmented=True))
"""


def build(corpus, cache, out, delay="0"):
    return subprocess.Popen([sys.executable, "-c", BUILD, str(corpus), str(cache), str(out), delay])


def test_a_killed_feature_build_resumes_to_the_same_table(corpus, tmp_path):
    from unigendet_train.views import ViewTable

    assert build(corpus, tmp_path / "whole", tmp_path / "whole.npy").wait(300) == 0
    proc = build(corpus, tmp_path / "killed", tmp_path / "killed.npy", delay="0.05")
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "killed").glob("*.safetensors")):
        assert proc.poll() is None, "the build ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    (table,) = list((tmp_path / "killed").glob("*.safetensors"))
    partial = ViewTable(table, ("rows",))
    assert 0 < len(partial.index) < 96 and not (tmp_path / "killed.npy").exists()  # part of the work, readable
    assert build(corpus, tmp_path / "killed", tmp_path / "killed.npy").wait(300) == 0
    whole, resumed = np.load(tmp_path / "whole.npy"), np.load(tmp_path / "killed.npy")
    assert np.array_equal(whole, resumed)
    assert len(ViewTable(table, ("rows",)).index) == 96


DATA_BUILD = """
import sys, time
from unigendet import cli
from unigendet.corpus import build
save = build.save_png
def slowly(img, path):  # slow enough to be killed between images
    time.sleep(float(sys.argv[2]))
    save(img, path)
build.save_png = slowly
sys.exit(cli.main(["data", "build", "--out", sys.argv[1], "--size", "64", "--crops-per-photo", "4", "--generators",
                   "nearest-x2", "bilinear-x2", "--photo-sources", "python", "--small-corpus", "--quiet"]))
"""


def data_build(out, delay="0"):
    return subprocess.Popen([sys.executable, "-c", DATA_BUILD, str(out), delay], stdout=subprocess.DEVNULL)


def test_a_killed_data_build_is_refused_then_rebuilt_the_same(tmp_path):
    from unigendet.data.readers import read_source
    from unigendet.data.records import DataError

    assert data_build(tmp_path / "whole").wait(300) == 0
    killed = tmp_path / "killed"
    proc = data_build(killed, delay="0.05")
    deadline = time.time() + 300
    while time.time() < deadline and len(list(killed.rglob("*.png"))) < 10:
        assert proc.poll() is None, "the build ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not (killed / "manifest.csv").exists()
    with pytest.raises(DataError, match="interrupted"):  # not read as a (GenImage-like) folder of images
        read_source(killed)
    for png in killed.rglob("*.png"):  # every image that has its name is whole
        Image.open(png).load()
    assert data_build(killed).wait(300) == 0
    assert not list(killed.rglob(".*"))  # no mark, no half-written file left
    whole = {p.relative_to(tmp_path / "whole"): p.read_bytes() for p in (tmp_path / "whole").rglob("*") if p.is_file()}
    again = {p.relative_to(killed): p.read_bytes() for p in killed.rglob("*") if p.is_file()}
    assert whole.keys() == again.keys() and all(whole[k] == again[k] for k in whole if k.name != "corpus.json")
    assert len(read_source(killed, strict=True)) == 80


def test_atomic_files_and_build_marks(tmp_path):
    from unigendet.data.records import DataError
    from unigendet.data.writing import INCOMPLETE, atomic_file, building, check_complete

    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not list(tmp_path.iterdir())  # neither the file nor its temporary name
    with atomic_file(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    folder = tmp_path / "set"
    with building(folder):
        with building(folder):  # nested: the mark stays until the outermost block ends
            pass
        assert (folder / INCOMPLETE).exists()
        check_complete(folder)  # this process may read what it builds
    assert not (folder / INCOMPLETE).exists()
    with pytest.raises(RuntimeError), building(folder):
        raise RuntimeError("failed")
    with pytest.raises(DataError, match="interrupted"):
        check_complete(folder)
