"""Writers that a kill must not corrupt: a feature-cache build killed midway (SIGKILL) leaves a
table that reads whole, and the rerun finishes it with the same rows as an uninterrupted build."""

import signal
import subprocess
import sys
import time

import numpy as np

BUILD = """
import sys, time
import numpy as np
from unigendet.data.readers import read_source
from unigendet_train import views
from unigendet_train.forensic import ForensicConfig, ViewFeatures

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
