"""GenDet: losses against hand-computed values, each training phase on learnable synthetic features,
the four ablation variants, save / load, and one end-to-end run on a tiny image manifest."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.detectors import DETECTORS, GenDetDetector, load_detector
from unigendet.metrics import detection_metrics
from unigendet.models import gendet_losses as L
from unigendet.models.gendet import VARIANTS, GenDet, GenDetConfig
from unigendet.weights import CheckpointError
from unigendet_train import gendet as T

pytestmark = pytest.mark.usefixtures("one_thread")


# --- losses (eqs 1-4) ---------------------------------------------------------------------------


def test_eq1_real_student_loss_by_hand():
    z_t = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z_s = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    # squared differences [1, 4] and [0, 4]: mean 9 / 4
    assert L.real_student_loss(z_t, z_s).item() == pytest.approx(2.25)
    assert L.real_student_loss(z_t, z_t).item() == 0.0


def test_eq2_margin_loss_by_hand():
    z_t = torch.tensor([[1.0, 0.0], [3.0, 4.0], [1.0, 0.0], [1.0, 0.0]])
    z_s = torch.tensor([[0.0, 2.0], [6.0, 8.0], [1.0, 1.0], [-5.0, 0.0]])
    # normalised: orthogonal -> 2; same direction (scale ignored) -> 0; 45 degrees -> 2 - sqrt 2; opposite -> 4
    d = L.normalised_distance(z_t, z_s)
    torch.testing.assert_close(d, torch.tensor([2.0, 0.0, 2 - math.sqrt(2), 4.0]))
    # hinge at M = 2: [0, 2, sqrt 2, 0]
    assert L.fake_margin_loss(z_t, z_s, margin=2.0).item() == pytest.approx((2 + math.sqrt(2)) / 4, abs=1e-6)
    # M = 3: [1, 3, 1 + sqrt 2, 0]
    assert L.fake_margin_loss(z_t, z_s, margin=3.0).item() == pytest.approx((5 + math.sqrt(2)) / 4, abs=1e-6)


def test_eq2_no_gradient_beyond_margin():
    z_t = torch.tensor([[1.0, 0.0]])
    z_s = torch.tensor([[-1.0, 0.1]], requires_grad=True)  # distance ~4 > M
    L.fake_margin_loss(z_t, z_s, margin=2.0).backward()
    assert torch.count_nonzero(z_s.grad) == 0
    z_s2 = torch.tensor([[1.0, 0.1]], requires_grad=True)  # distance ~0 < M: pushed away
    L.fake_margin_loss(z_t, z_s2, margin=2.0).backward()
    assert z_s2.grad.abs().sum() > 0


def test_eq2_reads_a_token_sequence_as_one_vector():
    z_t, z_s = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    cos = torch.nn.functional.cosine_similarity(z_t.flatten(1), z_s.flatten(1), dim=1)
    torch.testing.assert_close(L.normalised_distance(z_t, z_s), 2 - 2 * cos)


def test_eq3_eq4_by_hand():
    z_t, z_s = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.0, 1.0]])
    assert L.augmenter_loss(z_t, z_s).item() == pytest.approx(4.0)
    torch.testing.assert_close(L.discrepancy(z_t, z_s), torch.tensor([[4.0, 4.0]]))
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1])
    expect = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    assert L.classifier_loss(logits, labels).item() == pytest.approx(expect, abs=1e-6)
    assert L.teacher_loss(logits, labels).item() == pytest.approx(expect, abs=1e-6)


# --- model --------------------------------------------------------------------------------------


def test_config_validation():
    with pytest.raises(ValueError, match="variant"):
        GenDetConfig(variant="student-only")
    with pytest.raises(ValueError, match="divide"):
        GenDetConfig(feature_dim=30, tokens=4, embed="split")
    with pytest.raises(ValueError, match="embed"):
        GenDetConfig(embed="conv")
    cfg = GenDetConfig(feature_dim=32, dim=16, tokens=4, variant="ts-real")
    assert GenDetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        GenDetConfig.from_dict({**cfg.to_dict(), "depth": 2})


def test_split_embedding_keeps_chunks_apart_and_projection_mixes():
    split = GenDet(GenDetConfig(feature_dim=12, dim=8, heads=4, tokens=3, embed="split"))
    proj = GenDet(GenDetConfig(feature_dim=12, dim=8, heads=4, tokens=3, embed="project"))
    x = torch.randn(2, 12)
    bumped = x.clone()
    bumped[:, 8:] += 1.0  # the last chunk only
    for model, token0_moves in ((split, False), (proj, True)):
        e, e2 = model.teacher.embed(x), model.teacher.embed(bumped)
        assert e.shape == (2, 3, 8)
        assert not torch.equal(e[:, 2], e2[:, 2])
        assert (not torch.equal(e[:, 0], e2[:, 0])) == token0_moves
    with pytest.raises(ValueError, match="expected features"):
        proj.standardise(torch.zeros(2, 10))


@pytest.mark.parametrize("embed", ["project", "split"])
def test_augmenter_starts_as_identity(embed):
    model = GenDet(GenDetConfig(feature_dim=16, dim=8, heads=4, tokens=4, embed=embed))
    x = torch.randn(3, 16)
    assert torch.equal(model.augmenter(x), x)
    assert model.discrepancy(x).shape == (3, 4, 8)


# --- training phases on synthetic features ------------------------------------------------------

D = 32


def synthetic(n=64, seed=0):
    """Reals ~ N(0, 1); fakes shifted by 1.5 in the first quarter of the dimensions."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, D, generator=g)
    fake = torch.randn(n, D, generator=g)
    fake[:, : D // 4] += 1.5
    return torch.cat([real, fake]), torch.cat([torch.ones(n), torch.zeros(n)]).long()


SMALL = T.GenDetTrainConfig(dim=32, heads=4, tokens=4, rotations=3, teacher_epochs=8, classifier_epochs=8,
                            batch_size=32, device="cpu")


@pytest.fixture
def setup():
    x, y = synthetic()
    torch.manual_seed(0)
    model = GenDet(SMALL.model_config(D))
    model.fit_standardisation(x)
    tok = model.standardise(x).detach()
    return model, tok, y, torch.Generator().manual_seed(0)


def _adam(m, lr=1e-3):
    return torch.optim.AdamW(m.parameters(), lr=lr)


def falls(losses, factor=0.7):
    return losses[-1] < factor * losses[0]


def test_teacher_loss_falls(setup):
    model, tok, y, g = setup
    opt = _adam(model.teacher)
    losses = [T.teacher_epoch(model, opt, tok, y, 32, g) for _ in range(20)]
    assert falls(losses, 0.6), (losses[0], losses[-1])


def test_stage_a_student_real_loss_falls(setup):
    model, tok, y, g = setup
    opt = _adam(model.student)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    losses = [T.student_real_epoch(model, opt, tok[y == 1], 32, g) for _ in range(20)]
    assert falls(losses, 0.5), (losses[0], losses[-1])
    assert all(torch.equal(v, model.teacher.state_dict()[k]) for k, v in teacher_before.items())


def test_stage_b_student_fake_loss_falls(setup):
    model, tok, y, g = setup
    opt = _adam(model.student)
    for _ in range(10):  # student imitates the teacher: fakes are close too, so eq. 2 is active
        T.student_real_epoch(model, opt, tok[y == 1], 32, g)
    aug_before = {k: v.clone() for k, v in model.augmenter.state_dict().items()}
    opt_b = _adam(model.student)  # stage b has its own optimizer state, as in fit_gendet
    losses = [T.student_fake_epoch(model, opt_b, tok[y == 0], 32, g, augment=True) for _ in range(20)]
    assert losses[0] > 0.1 and falls(losses, 0.5), (losses[0], losses[-1])
    assert all(torch.equal(v, model.augmenter.state_dict()[k]) for k, v in aug_before.items())


def test_stage_c_augmenter_loss_falls(setup):
    model, tok, y, g = setup
    opt_a, opt_b = _adam(model.student), _adam(model.student)
    for _ in range(6):
        T.student_real_epoch(model, opt_a, tok[y == 1], 32, g)
        T.student_fake_epoch(model, opt_b, tok[y == 0], 32, g, augment=False)
    student_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    opt_g = _adam(model.augmenter)
    losses = [T.augmenter_epoch(model, opt_g, tok[y == 0], 32, g) for _ in range(20)]
    assert falls(losses, 0.7), (losses[0], losses[-1])
    assert all(torch.equal(v, model.student.state_dict()[k]) for k, v in student_before.items())
    assert model.augmenter.out.weight.abs().sum() > 0  # it moved away from the identity


def test_classifier_loss_falls(setup):
    model, tok, y, g = setup
    opt_s = _adam(model.student)
    for _ in range(4):
        T.student_real_epoch(model, opt_s, tok[y == 1], 32, g)
    disc = T.all_discrepancies(model, tok)
    model.classifier.fit_standardisation(disc)
    opt = _adam(model.classifier)
    losses = [T.classifier_epoch(model, opt, disc, y, 32, g) for _ in range(20)]
    assert falls(losses, 0.5), (losses[0], losses[-1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_train_what_they_should(variant):
    x, y = synthetic()
    cfg = dataclasses.replace(SMALL, variant=variant)
    model, curves = T.fit_gendet(cfg, x, y)
    p = model.score(x)
    assert p.shape == (len(x),) and bool(((p >= 0) & (p <= 1)).all())
    assert detection_metrics(p.detach().numpy(), y.numpy())["acc"] > 0.8
    phases = {"teacher": {"teacher"}, "ts-real": {"teacher", "student_real", "classifier"},
              "ts-fakes": {"teacher", "student_real", "student_fake", "classifier"},
              "full": {"teacher", "student_real", "student_fake", "augmenter", "classifier"}}[variant]
    assert set(curves) == phases
    assert len(curves["teacher"]) == cfg.teacher_epochs
    assert (model.augmenter.out.weight.abs().sum() > 0) == (variant == "full")
    assert all(p.grad is None for p in model.parameters())
    assert not any(p.requires_grad for p in model.parameters())
    if variant != "teacher":
        assert len(curves["student_real"]) == cfg.rotations * cfg.stage_epochs


def test_score_is_eq5_without_the_augmenter():
    x, y = synthetic()
    model, _ = T.fit_gendet(SMALL, x, y)
    before = model.score(x)
    with torch.no_grad():
        d = model.classifier(model.discrepancy(model.standardise(x)))
        torch.testing.assert_close(before, d.softmax(-1)[:, 0])
        for p in model.augmenter.parameters():
            p.add_(1.0)
    assert torch.equal(model.score(x), before)

    teacher_only, _ = T.fit_gendet(dataclasses.replace(SMALL, variant="teacher"), x, y)
    with torch.no_grad():
        z = teacher_only.teacher(teacher_only.standardise(x))
        torch.testing.assert_close(teacher_only.score(x), teacher_only.teacher.logits(z).softmax(-1)[:, 0])


def test_fit_is_deterministic():
    x, y = synthetic()
    a, ca = T.fit_gendet(SMALL, x, y)
    b, cb = T.fit_gendet(SMALL, x, y)
    assert ca == cb
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    c, _ = T.fit_gendet(dataclasses.replace(SMALL, seed=1), x, y)
    assert not torch.equal(c.teacher.head.weight, a.teacher.head.weight)


def test_fit_needs_both_classes():
    x, y = synthetic()
    with pytest.raises(ValueError, match="real and fake"):
        T.fit_gendet(SMALL, x[y == 1], y[y == 1])


# --- checkpoints --------------------------------------------------------------------------------


def _save(tmp_path, model):
    detector = GenDetDetector("g", model, "efficientnet-lite0", None)
    return detector.save_pretrained(tmp_path / "run", meta={"seed": 0}, json_files={"metrics.json": {}})


def test_save_load_round_trip_is_exact(tmp_path):
    x, y = synthetic()
    model, _ = T.fit_gendet(SMALL, x, y)
    run = _save(tmp_path, model)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "meta.json", "metrics.json", "model.safetensors"]
    det = load_detector(run)
    assert isinstance(det, GenDetDetector) and det.name == "g"
    assert np.array_equal(det.scores(x), model.score(x).double().numpy())
    assert det.discrepancies(x).shape == (len(x), SMALL.tokens * SMALL.dim)
    _save(tmp_path, model)  # overwriting an existing run directory is atomic and leaves no temporaries
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_wrong_shape_checkpoint_fails_clearly(tmp_path):
    x, y = synthetic()
    model, _ = T.fit_gendet(dataclasses.replace(SMALL, teacher_epochs=1, rotations=1, classifier_epochs=1), x, y)
    run = _save(tmp_path, model)
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["dim"] = 64
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_detector(run)
    cfg["kind"] = "mystery"
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown detector kind"):
        load_detector(run)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_detector(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_detector(tmp_path / "empty")
    assert set(DETECTORS) >= {"gendet", "linear-probe", "cnn"}


# --- end to end on a tiny image manifest --------------------------------------------------------


def write_manifest(root, per_split=(("train", 16), ("val", 8)), size=64):
    """Real: sharp 64 px crops of scikit-image photos; fake: the same crop rebuilt from a 4x smaller
    copy (pixelated upsampling). Same size, format and mode in both classes."""
    from skimage import data as skd

    photos = [skd.astronaut(), skd.coffee(), skd.chelsea(), skd.rocket()]
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    rows = []
    for split, n in per_split:
        for i in range(n):
            photo = photos[i % len(photos)]
            top, left = rng.integers(0, photo.shape[0] - 2 * size), rng.integers(0, photo.shape[1] - 2 * size)
            real = Image.fromarray(photo[top : top + 2 * size, left : left + 2 * size]).resize((size, size),
                                                                                               Image.Resampling.BOX)
            fake = real.resize((size // 4, size // 4), Image.Resampling.BOX).resize((size, size),
                                                                                    Image.Resampling.NEAREST)
            for label, img in (("real", real), ("fake", fake)):
                name = f"img/{split}-{i:03d}-{label}.png"
                img.save(root / name)
                rows.append({"path": name, "label": label, "generator": "pixelate", "split": split})
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "generator", "split"])
        w.writeheader()
        w.writerows(rows)
    return root


def test_run_end_to_end_and_reload(tmp_path):
    data = write_manifest(tmp_path / "data")
    cfg = T.GenDetTrainConfig(data=str(data), out=str(tmp_path / "run"), cache=str(tmp_path / "cache"), dim=32,
                              rotations=2, teacher_epochs=15, classifier_epochs=15, batch_size=16)
    summary = T.run_gendet(cfg).metrics
    assert summary["val_acc"] >= 0.8, summary
    run = tmp_path / "run"
    assert {"config.json", "meta.json", "metrics.json", "model.safetensors", "log.jsonl"} <= {
        p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "gendet" and config["model"]["variant"] == "full" and config["train"]["seed"] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["curves"]) == {"teacher", "student_real", "student_fake", "augmenter", "classifier"}
    assert metrics["val"]["acc"] == summary["val_acc"]
    phases = [json.loads(line)["phase"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert phases[0] == "setup" and phases[-1] == "eval" and "augmenter" in phases

    det = load_detector(run)
    val = sorted((data / "img").glob("val-*"))
    labels = np.array([0 if p.stem.endswith("fake") else 1 for p in val])
    det.use_cache(tmp_path / "cache")
    cached = det.predict(val)
    assert detection_metrics(cached, labels)["ap"] == pytest.approx(metrics["val"]["ap"])
    assert det.features(val[:2]).shape == (2, 8 * 32) and len(list((tmp_path / "cache").rglob("*.safetensors")))
    det.use_cache(None)
    np.testing.assert_allclose(det.predict(val[:4]), cached[:4], atol=1e-5)  # no cache: fresh extraction
    assert det.features(val[:2]).shape == (2, 8 * 32)
