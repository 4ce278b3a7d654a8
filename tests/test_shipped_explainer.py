"""The explaining UniGenDet the package ships: small, carded, and `unigendet detect --explain`
uses it from any directory, beside the shipped detector's verdict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from unigendet.explain import CueScale, read_claims
from unigendet.rundir import read_meta
from unigendet.shipped import shipped_path
from unigendet.unified.checkpoint import load_config
from unigendet.unified.prompts import parse_verdict


def test_the_package_ships_a_small_carded_explainer_with_its_cue_scale():
    path = shipped_path("explain")
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 50 * 2**20, f"{size / 2**20:.1f} MB"
    assert {"config.json", "meta.json", "model.safetensors", "codec.safetensors", "MODEL_CARD.md"} <= {
        f.name for f in path.iterdir()}
    assert load_config(path).vit.encoder == "forensic"
    scale = CueScale.from_json(json.dumps(read_meta(path)["cue_scale"]))
    assert all(low < high for low, high in scale.bounds.values())
    assert "wild-train" in (path / "MODEL_CARD.md").read_text()
    # it is asked with the served detector's verdict and evidence, and says so in its card
    assert read_meta(path)["evidence_prompt"] is True and "evidence" in (path / "MODEL_CARD.md").read_text()


def test_an_uncertain_verdict_is_explained_from_the_side_its_p_fake_lies_on():
    from unigendet.apps.predictor import Verdict, evidence_questions, leaning
    from unigendet.detectors.attribution import Attribution

    assert leaning(Verdict("uncertain", 0.9), 0.85) == "fake" and leaning(Verdict("uncertain", 0.8), 0.85) == "real"
    assert leaning(Verdict("real", 0.9), 0.5) == "real"  # a stated label is kept
    a = Attribution(logit=1.2, base=0.2, contributions={"fine": 1.5, "content": -0.5}, exact=True)
    (q,) = evidence_questions([Verdict("uncertain", 0.9)], [a], 0.85)
    assert "calls it fake" in q and "+1.5" in q and "-0.5" not in q.split("Toward a photo")[0]


def test_detect_explain_works_from_any_directory(tmp_path):
    img = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 280, 3), dtype=np.uint8)).save(img)
    exe = Path(sys.executable).with_name("unigendet")
    out = subprocess.run([str(exe), "detect", "--explain", str(img), "--format", "jsonl", "--quiet"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "UNIGENDET_DETECTOR"})
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert row["label"] in ("real", "fake", "uncertain") and 0 <= row["p_fake"] <= 1
    # one verdict: the detector's; the explanation gives its reasons and the explainer's measured cues
    assert parse_verdict(row["explanation"]) is None and "This is a" not in row["explanation"]
    assert row["explanation"].startswith(("Most of the evidence for", "The image's parts disagree", "No kind of"))
    assert "The measured cues" in row["explanation"] and read_claims(row["explanation"]).made >= 1
    assert row["attribution"]["method"] == "linear"
    assert abs(row["attribution"]["base"] + sum(row["attribution"]["contributions"].values())
               - row["attribution"]["logit"]) < 1e-3
    assert row["evidence"].endswith("call.")  # where the shipped detector's evidence lies, how sure it is
