"""GDUF and DIGA on the small corpus: losses fall, DIGA trains only the generation side,
a killed run resumes to the same weights, 2 processes equal 1, failures propagate."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from unigendet_train.config import DIGAConfig, GDUFConfig
from unigendet_train.dist import init_distributed
from unigendet_train.loop import Trainer
from unigendet_train.unified import build_run, run_unified

FAST = dict(det_per_step=4, t2i_per_step=2, eval_every=0, progress=False, warmup=2, log_every=1)


def mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def gduf_run(corpus, codec_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gduf")
    cfg = GDUFConfig(data=str(corpus), out=str(out), steps=30, ckpt_every=30, codec=str(codec_run),
                      **FAST)
    metrics = run_unified(cfg).metrics
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return out, metrics, [r for r in rows if r["kind"] == "train"]


def test_gduf_losses_fall(gduf_run):
    out, metrics, rows = gduf_run
    assert {"ce", "mse", "cls", "loss", "lr", "grad_norm"} <= set(rows[0])
    assert mean([r["ce"] for r in rows[-5:]]) < 0.5 * mean([r["ce"] for r in rows[:5]])
    assert mean([r["loss"] for r in rows[-5:]]) < mean([r["loss"] for r in rows[:5]])
    assert (out / "checkpoints" / "step-000030" / "codec.safetensors").is_file()
    assert {"val_acc", "val_text_acc", "val_unparsed", "val_mse"} <= set(metrics)


def test_diga_trains_only_the_generation_side(gduf_run, corpus, tmp_path):
    gduf_out, _, _ = gduf_run
    init = gduf_out / "checkpoints" / "step-000030"
    cfg = DIGAConfig(data=str(corpus), out=str(tmp_path / "diga"), init=str(init), steps=25, ckpt_every=25,
                     t2i_per_step=4, lr=2e-3, report=False, **{k: v for k, v in FAST.items() if "per_step" not in k})
    run_unified(cfg)
    rows = [json.loads(x) for x in (tmp_path / "diga" / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert {"mse", "align"} <= set(rows[0]) and "ce" not in rows[0]
    assert mean([r["align"] for r in rows[-5:]]) < mean([r["align"] for r in rows[:5]])
    before = load_file(str(init / "ema.safetensors"))  # DIGA starts from the GDUF EMA weights
    after = load_file(str(tmp_path / "diga" / "checkpoints" / "step-000025" / "model.safetensors"))
    gen = ("_moe_gen", "time_embedder", "vae2llm", "llm2vae", "diga_mlp")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(any(g in k for g in gen) for k in changed), sorted(changed)[:5]
    assert any("diga_mlp" in k for k in changed) and any("mlp_moe_gen" in k for k in changed)


def test_a_failing_step_stops_the_run(corpus, codec_run, tmp_path):
    cfg = GDUFConfig(data=str(corpus), out=str(tmp_path), steps=3, ckpt_every=100, codec=str(codec_run), **FAST)
    dist = init_distributed()
    model, _, task = build_run(cfg, dist)

    def broken(step, micro):
        if step == 1:
            raise RuntimeError("corrupt batch at step 1")
        return orig(step, micro)

    orig, task.batch = task.batch, broken
    with pytest.raises(RuntimeError, match="corrupt batch"):
        Trainer(model, task, cfg, dist).fit()


def train_cmd(corpus, codec, out, steps, extra=()):
    """A GDUF run as the CLI launches it, without the final report (its greedy decoding is not under test)."""
    return [sys.executable, "-m", "unigendet_train", "gduf", "--data", str(corpus), "--codec", str(codec),
            "--out", str(out),
            "--steps", str(steps), "--det-per-step", "4", "--t2i-per-step", "2", "--eval-every", "0",
            "--ckpt-every", "3", "--no-progress", "--warmup", "2", "--log-every", "1", "--no-report", *extra]


def test_killed_run_resumes_to_the_same_weights(corpus, codec_run, tmp_path):
    steps = 12
    subprocess.run(train_cmd(corpus, codec_run, tmp_path / "full", steps), check=True, capture_output=True)
    proc = subprocess.Popen(train_cmd(corpus, codec_run, tmp_path / "killed", steps), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-000006"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest.is_file(), "no checkpoint was written before the kill"
    killed_at = latest.read_text().strip()
    assert killed_at != f"step-{steps:06d}", "the run finished before it could be killed"
    for d in (tmp_path / "killed" / "checkpoints").iterdir():  # never a half-written checkpoint
        if d.is_dir():
            assert d.name.startswith("step-") and (d / "model.safetensors").is_file() and (d / "meta.json").is_file()
    subprocess.run(train_cmd(corpus, codec_run, tmp_path / "killed", steps, ["--resume"]), check=True,
                   capture_output=True)
    name = f"step-{steps:06d}"
    a = load_file(str(tmp_path / "full" / "checkpoints" / name / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoints" / name / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs after resume from {killed_at}")


def torchrun(args, port):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(port), "-m", "unigendet_train", *args[3:]],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


STEPS = 4  # of the runs below; checkpoints at step 3 and 4
PORTS = {"ddp": 29517, "fsdp": 29518}


@pytest.fixture(scope="module")
def one_process_run(corpus, codec_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    one = subprocess.run(train_cmd(corpus, codec_run, out, STEPS), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def two_process_runs(corpus, codec_run, tmp_path_factory):
    """strategy -> the run directory of a two-process run, launched once per module (FSDP with
    activation checkpointing, so one run covers both)."""
    runs = {}

    def run(strategy):
        if strategy not in runs:
            out = tmp_path_factory.mktemp(strategy) / "run"
            extra = ["--parallel", strategy] + (["--activation-checkpointing"] if strategy == "fsdp" else [])
            two = torchrun(train_cmd(corpus, codec_run, out, STEPS, extra), PORTS[strategy])
            assert two.returncode == 0, two.stderr[-3000:]
            runs[strategy] = out
        return runs[strategy]

    return run


def losses(run):
    rows = [json.loads(x) for x in (Path(run) / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["ce"], r["mse"], r["cls"]) for r in rows if r["kind"] == "train"]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_give_the_same_loss_as_one(one_process_run, two_process_runs, strategy):
    a, b = losses(one_process_run), losses(two_process_runs(strategy))
    assert len(a) == len(b) == STEPS
    for ra, rb in zip(a, b):
        assert ra[0] == rb[0]
        assert ra[1:] == pytest.approx(rb[1:], rel=2e-4, abs=1e-5)


def rewound(run, to, step):
    """A copy of a finished run whose latest checkpoint is `step` again (the later ones removed)."""
    shutil.copytree(run, to)
    root = to / "checkpoints"
    for d in root.glob("step-*"):
        if int(d.name.split("-")[1]) > step:
            shutil.rmtree(d)
    (root / "latest").write_text(f"step-{step:06d}")
    return to


def test_sharded_run_resumes_and_its_checkpoint_loads_anywhere(corpus, codec_run, two_process_runs, tmp_path):
    """FSDP checkpoints hold full, FQN-keyed state: resuming from step 3 under FSDP or in one process
    continues the same run to the same step-4 weights."""
    full = two_process_runs("fsdp")
    sharded, single = rewound(full, tmp_path / "sharded", 3), rewound(full, tmp_path / "single", 3)
    fsdp = ["--parallel", "fsdp", "--activation-checkpointing", "--resume"]
    again = torchrun(train_cmd(corpus, codec_run, sharded, STEPS, fsdp), 29521)
    assert again.returncode == 0, again.stderr[-3000:]
    subprocess.run(train_cmd(corpus, codec_run, single, STEPS, ["--resume"]), check=True, capture_output=True)
    name = f"step-{STEPS:06d}"
    ref = load_file(str(full / "checkpoints" / name / "model.safetensors"))
    for run, tol in ((sharded, 0.0), (single, 1e-6)):
        got = load_file(str(run / "checkpoints" / name / "model.safetensors"))
        assert got.keys() == ref.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=tol, msg=f"{run.name}: {k}")


def small_detection_set(corpus, out, per_class=4):
    """A manifest of a few corpus images per class and split (absolute paths): a quick detection set."""
    import csv

    from unigendet.data.readers import read_source

    records = read_source(corpus)
    rows = []
    for split, n in (("train", per_class), ("val", per_class // 2)):
        for label in ("fake", "real"):
            rows += [r for r in records if r.split == split and (r.label == 0) == (label == "fake")][:n]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "generator"])
        for r in rows:
            w.writerow([str(Path(r.path).resolve()), "fake" if r.label == 0 else "real", r.split, r.generator])
    return out


@pytest.fixture(scope="module")
def forensic_run(gduf_run, corpus, tmp_path_factory):
    """GDUF from the NaViT run with the frozen forensic encoder swapped in, on a small detection set,
    its answers stating the shipped detector's verdict and reasons."""
    gduf_out, _, _ = gduf_run
    tmp = tmp_path_factory.mktemp("forensic")
    det = small_detection_set(corpus, tmp / "det", per_class=10)  # a cue scale needs 10 photos
    cfg = GDUFConfig(data=str(corpus), det_data=str(det), out=str(tmp / "wild"),
                      init=str(gduf_out / "checkpoints" / "step-000030"), understanding="tiny-forensic", views=2,
                      explains="shipped", cache=str(tmp / "cache"), steps=4, ckpt_every=4, **FAST)
    return cfg, run_unified(cfg).metrics


def test_gduf_with_the_frozen_forensic_encoder_states_measured_cues(forensic_run, monkeypatch):
    """A generator trained with the NaViT swaps in the frozen forensic encoder and learns detection
    from prepared views whose reference answers state the cues measured on each view; the checkpoint
    carries the cue scale and detects native crops end to end; the views are made once."""
    from unigendet.rundir import read_meta
    from unigendet.unified.pipeline import UniGenDetPipeline
    from unigendet.unified.samples import SampleBuilder
    from unigendet_train import tokens

    cfg, metrics = forensic_run
    tmp_path, det = Path(cfg.out).parent, cfg.det_data
    assert {"val_claims_consistent", "val_claims_per_answer", "val_text_agrees_cls"} <= set(metrics)
    assert 0 <= metrics["val_claims_consistent"] <= 1
    ckpt = tmp_path / "wild" / "checkpoints" / "step-000004"
    scale = read_meta(ckpt)["cue_scale"]
    assert set(scale["bounds"]) == {"periodic", "grid", "texture"}
    pipe = UniGenDetPipeline.from_pretrained(ckpt)
    assert pipe.config.vit.encoder == "forensic" and pipe.model.vit_model is None
    norm = pipe.model.vit_norm  # fitted on the training views, saved with the weights
    assert norm.fitted and not torch.equal(norm.std, torch.ones_like(norm.std))
    from PIL import Image

    (d,) = pipe.detect_images([Image.new("RGB", (300, 200), (120, 80, 40))], explain=True, max_new_tokens=8)
    assert 0 <= d.p_fake <= 1 and isinstance(d.text, str)
    # a second run on the same data reads the cached views instead of encoding them again
    monkeypatch.setattr(SampleBuilder, "encode_images", lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded")))
    from unigendet.data.readers import read_source

    builder = SampleBuilder(pipe.config, pipe.tokenizer)
    train = [r for r in read_source(str(det)) if r.split == "train"]
    bank = tokens.load_token_bank(train, builder, pipe.codec, 2, 0, tmp_path / "cache")
    assert bank.tokens.shape[:2] == (len(train), 2) and bank.latents.shape[1] == 2


def test_answers_state_the_explained_detectors_verdict_and_reasons(forensic_run, monkeypatch):
    """With `explains`, each view's reference answer is the explained detector's verdict on that
    view, its reasons (read back, they agree with its attribution), then the measured cues; the
    detector's readings are cached per view like the tokens; the run reports how far the written
    answers agree with it and records what it explains."""
    from unigendet.data.readers import read_source
    from unigendet.detectors import load_detector
    from unigendet.explain import check, read_reasons, reasons_agree
    from unigendet.labels import LABEL_NAMES
    from unigendet.rundir import read_meta
    from unigendet.unified.pipeline import UniGenDetPipeline
    from unigendet.unified.samples import SampleBuilder
    from unigendet_train import tokens

    cfg, metrics = forensic_run
    assert 0 <= metrics["val_reasons_agree"] <= 1 and 0 <= metrics["val_text_agrees_teacher"] <= 1
    ckpt = Path(cfg.out) / "checkpoints" / "step-000004"
    assert read_meta(ckpt)["explains"] == "shipped"
    pipe = UniGenDetPipeline.from_pretrained(ckpt)
    builder = SampleBuilder(pipe.config, pipe.tokenizer)
    train = [r for r in read_source(cfg.det_data) if r.split == "train"]
    bank = tokens.load_token_bank(train, builder, pipe.codec, 2, 0, cfg.cache)
    teacher = load_detector("shipped")
    bank.teacher = tokens.teacher_evidence(bank, teacher, "t", builder.cfg.detect_side, 0, cfg.cache)
    bank.scale = tokens.CueScale.fit(bank.photo_cues())
    side = builder.cfg.detect_side
    views = [tokens.tensor_to_pil(tokens.view_image(r, v, side, 0)) for r in train[:3] for v in (0, 1)]
    direct = teacher.attribution(views)
    for k, a in enumerate(direct):
        i, v = divmod(k, 2)
        said = LABEL_NAMES[bank.teacher.label(i, v)]
        assert said == ("fake" if a.logit > np.log(teacher.threshold / (1 - teacher.threshold)) else "real")
        answer = bank.answer(i, v)
        assert answer.startswith(f"This is a {said} image.")
        assert reasons_agree(answer, a.contributions, said) and read_reasons(answer).side == said
        assert check(answer, bank.levels(i, v)).unparsed == []  # reasons are not mistaken for cue claims
    # cached: a second bank of the same views asks the detector nothing
    monkeypatch.setattr(tokens, "attribute", lambda *a: (_ for _ in ()).throw(AssertionError("re-attributed")))
    again = tokens.teacher_evidence(bank, teacher, "t", builder.cfg.detect_side, 0, cfg.cache)
    assert torch.equal(again.contributions, bank.teacher.contributions)


def test_explainer_trained_on_the_evidence_reads_it_when_served(forensic_run, tmp_path, monkeypatch):
    """With `evidence_prompt`, every question carries the explained detector's verdict and its evidence
    ranked by size; the checkpoint records it, and the server hands the served detector's verdicts and
    attributions to such an explainer (a plain explainer is asked the plain question)."""
    from PIL import Image

    from unigendet.apps.predictor import Predictor
    from unigendet.detectors import load_detector
    from unigendet.rundir import read_meta
    from unigendet.unified.prompts import DETECTION_QUESTION, evidence_question
    from unigendet_train import tasks

    q = evidence_question({"texture": -0.02, "fine pixel traces": 1.94, "noise": 0.6, "colour": 0.0}, "fake")
    assert q == (f"{DETECTION_QUESTION} The detector calls it fake. Toward generated: fine pixel traces +1.9, "
                 "noise +0.6. Toward a photo: texture -0.0.")
    assert evidence_question({"noise": 0.3}, "real").endswith("Toward generated: noise +0.3. Toward a photo: nothing.")
    gduf, _ = forensic_run
    asked = []
    detection = tasks.SampleBuilder.detection

    def spy(self, latent, image, question=DETECTION_QUESTION, **kw):
        asked.append(question)
        return detection(self, latent, image, question, **kw)

    monkeypatch.setattr(tasks.SampleBuilder, "detection", spy)
    cfg = gduf.replace(out=str(tmp_path / "evidence"), evidence_prompt=True, steps=2, ckpt_every=2)
    metrics = run_unified(cfg).metrics
    assert asked and all(x.startswith(f"{DETECTION_QUESTION} The detector calls it ") for x in asked)
    assert 0 <= metrics["val_reasons_agree"] <= 1
    ckpt = tmp_path / "evidence" / "checkpoints" / "step-000002"
    assert read_meta(ckpt)["evidence_prompt"] is True
    assert load_detector(ckpt).reads_evidence and not load_detector(Path(gduf.out) / "checkpoints"
                                                                      / "step-000004").reads_evidence
    monkeypatch.undo()
    images = [Image.new("RGB", (300, 200), (120, 80, 40)), Image.new("RGB", (64, 64), (10, 200, 30))]
    for explainer, reads in ((ckpt, True), (Path(gduf.out) / "checkpoints" / "step-000004", False)):
        predictor = Predictor("shipped", explainer=str(explainer))
        seen = []
        real_explain = type(predictor.explainer()).explain_images

        def recorded(self, imgs, questions=None, seen=seen, real_explain=real_explain):
            seen.append(questions)
            return real_explain(self, imgs, questions)

        monkeypatch.setattr(type(predictor.explainer()), "explain_images", recorded)
        verdicts = predictor.detect(images, explain=True)
        if reads:
            said = [v.label if v.label != "uncertain" else ("fake" if v.p_fake > predictor.threshold else "real")
                    for v in verdicts]
            assert seen == [[evidence_question(v.attribution.contributions, s) for v, s in
                             zip(verdicts, said, strict=True)]]
        else:
            assert seen == [None]
        monkeypatch.undo()
    with pytest.raises(ValueError, match="needs --explains"):
        run_unified(cfg.replace(explains=None, out=str(tmp_path / "none")))


def test_diga_with_the_frozen_encoder_aligns_photo_views(forensic_run, tmp_path):
    """DIGA from a frozen-encoder GDUF run: the aligned samples are the detection set's photo views,
    read by the teacher from their tokens; the alignment loss falls, only the generation side
    trains, and the cue scale carries over so the DIGA checkpoint still explains."""
    from unigendet.rundir import read_meta

    gduf, _ = forensic_run
    init = Path(gduf.out) / "checkpoints" / "step-000004"
    cfg = DIGAConfig(data=gduf.data, det_data=gduf.det_data, cache=gduf.cache, out=str(tmp_path / "diga"),
                     init=str(init), steps=20, ckpt_every=20, det_per_step=4, t2i_per_step=2, lr=2e-3,
                     **{k: v for k, v in FAST.items() if "per_step" not in k})
    metrics = run_unified(cfg).metrics
    rows = [json.loads(x) for x in (tmp_path / "diga" / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert {"mse", "align"} <= set(rows[0]) and "ce" not in rows[0]
    assert mean([r["align"] for r in rows[-5:]]) < mean([r["align"] for r in rows[:5]])
    before = load_file(str(init / "ema.safetensors"))
    after = load_file(str(tmp_path / "diga" / "checkpoints" / "step-000020" / "model.safetensors"))
    gen = ("_moe_gen", "time_embedder", "vae2llm", "llm2vae", "diga_mlp")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(any(g in k for g in gen) for k in changed), sorted(changed)[:5]
    ckpt = tmp_path / "diga" / "checkpoints" / "step-000020"
    assert read_meta(ckpt)["cue_scale"] == read_meta(init)["cue_scale"]
    assert "val_claims_consistent" in metrics
    with pytest.raises(ValueError, match="photo views"):
        run_unified(cfg.replace(det_per_step=0, out=str(tmp_path / "none")))


def test_a_new_unified_stage_is_one_declaration(corpus, codec_run, tmp_path, capsys):
    """A stage on the unified model is a config class, a task class and one `unified_stage` line, in one
    module: the train command, the loop, checkpoints and the report then work for it (here, as an example,
    GDUF without the answer's cross-entropy). A config class nobody declared is refused by name."""
    from dataclasses import dataclass

    from unigendet_train.config import UnifiedConfig
    from unigendet_train.main import main as train_main
    from unigendet_train.stages import STAGES
    from unigendet_train.tasks import GDUFTask
    from unigendet_train.unified import TASKS, unified_stage

    @dataclass(frozen=True)
    class ClsOnlyConfig(UnifiedConfig):
        """GDUF with the cls head's loss and the flow loss only (an example stage)."""

        out: str = "runs/cls-only"
        cls_weight: float = 1.0

    class ClsOnlyTask(GDUFTask):
        @property
        def weights(self) -> dict[str, float]:
            return {"mse": 1.0, "cls": self.cfg.cls_weight}

    unified_stage("cls-only", ClsOnlyConfig, ClsOnlyTask)
    try:
        out = tmp_path / "cls-only"
        assert train_main(["cls-only", "--data", str(corpus), "--out", str(out), "--codec", str(codec_run),
                           "--steps", "3", "--ckpt-every", "3", "--det-per-step", "4", "--t2i-per-step", "2",
                           "--eval-every", "0", "--no-progress", "--no-report"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert Path(result["checkpoint"]).name == "step-000003"
        rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"train"' in x]
        assert {"mse", "cls"} <= set(rows[0]) and "ce" not in rows[0]
        with pytest.raises(ValueError, match="already configures"):
            unified_stage("cls-only-twin", ClsOnlyConfig, GDUFTask)

        @dataclass(frozen=True)
        class Undeclared(GDUFConfig):
            pass

        with pytest.raises(ValueError, match="Undeclared configures no unified stage"):
            run_unified(Undeclared(data=str(corpus), out=str(tmp_path / "x")))
    finally:
        STAGES.pop("cls-only", None)
        TASKS.pop(ClsOnlyConfig, None)
