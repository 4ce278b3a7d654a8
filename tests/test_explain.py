"""Explanations tied to measurements: each cue responds to the trace it names, the written
sentences read back into the claims they make, and a claim that contradicts the measurement is
caught."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from unigendet.explain import CUES, PHRASES, Cues, CueScale, check, describe, measure, measure_tensor, read_claims
from unigendet.explain.text import reference_answer
from unigendet.images import pil_to_tensor
from unigendet.labels import FAKE, REAL


def noise(side=128, seed=0):
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def to_pil(x):
    return Image.fromarray(((x[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy())


def jpeg(x, quality=40):
    buf = io.BytesIO()
    to_pil(x).save(buf, "JPEG", quality=quality)
    return Image.open(buf).convert("RGB")


def smooth(x, k=5):
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="reflect"), k, 1)


def test_each_cue_responds_to_its_trace():
    base = measure_tensor(smooth(noise(), 3))[0]
    repeated = measure_tensor(F.interpolate(smooth(noise(64), 3), scale_factor=2, mode="nearest"))[0]
    assert repeated.periodic > base.periodic + 1.0  # pixel repetition: one phase has no steps
    blocky = measure([jpeg(smooth(noise(), 7), quality=30)])[0]
    assert blocky.grid > measure_tensor(smooth(noise(), 7))[0].grid + 0.2  # JPEG's 8-px block grid
    assert measure_tensor(smooth(noise(), 5))[0].texture < measure_tensor(noise())[0].texture - 2  # blur: smoother
    # nothing above is a side effect of the image's brightness
    shifted = measure_tensor(smooth(noise(), 3) * 0.5 + 0.3)[0]
    assert abs(shifted.grid - base.grid) < 0.1


def test_measure_reads_native_central_crop_and_refuses_tiny_images():
    big = to_pil(noise(400))
    (c,) = measure([big])
    assert c == measure_tensor(pil_to_tensor(big.crop((72, 72, 328, 328)))[None])[0]
    with pytest.raises(ValueError, match="16"):
        measure_tensor(torch.zeros(1, 3, 8, 8))


def test_scale_levels_and_round_trip():
    photos = [Cues(float(i), float(i) / 10, -float(i)) for i in range(100)]
    scale = CueScale.fit(photos, fitted_on="test")
    assert scale.level("periodic", 5.0) == "low" and scale.level("periodic", 50.0) == "typical"
    assert scale.level("periodic", 95.0) == "high" and scale.level("texture", -95.0) == "low"
    assert CueScale.from_json(scale.to_json()) == scale
    with pytest.raises(ValueError, match="10 photos"):
        CueScale.fit(photos[:3])
    with pytest.raises(ValueError, match="lacks"):
        CueScale.from_json('{"bounds": {"grid": [0, 1]}}')


@pytest.mark.parametrize("levels", [
    {"periodic": "high", "grid": "low", "texture": "low"},
    {"periodic": "typical", "grid": "high", "texture": "typical"},
    {"periodic": "low", "grid": "typical", "texture": "high"},
])
def test_written_claims_read_back_and_hold(levels):
    text = reference_answer(FAKE, levels)
    assert text.startswith("This is a fake image.")
    reading = check(text, levels)
    assert reading.made == len(CUES) and reading.consistent == len(CUES) and not reading.unparsed
    assert check(reference_answer(REAL, levels), levels).consistent == len(CUES)


def test_a_claim_against_the_measurement_is_caught():
    measured = {"periodic": "typical", "grid": "low", "texture": "low"}
    wrong = describe({"periodic": "high", "grid": "low", "texture": "high"})
    reading = check(wrong, measured)
    assert reading.made == 3 and reading.consistent == 1  # only the grid claim holds
    # "no block grid" is true of a low and of a typical grid; it is false of a strong one
    assert check(describe(measured), {**measured, "grid": "typical"}).consistent == 3
    assert check(describe(measured), {**measured, "grid": "high"}).consistent == 2


def test_unknown_sentences_are_reported_not_dropped():
    reading = read_claims("This is a real image. The lighting looks natural. Noisier than most photos.")
    assert reading.unparsed == ["The lighting looks natural."]
    assert reading.claims == {"texture": frozenset({"high"})}
    assert read_claims("").made == 0


def test_every_level_has_exactly_one_sentence():
    for cue, rows in PHRASES.items():
        for level in ("low", "typical", "high"):
            assert sum(level in ok for _, ok in rows) == 1, (cue, level)


def test_confidence_says_how_sure():
    from unigendet.explain import confidence

    assert confidence(0.97, 0.5).endswith("a clear call.") and "0.97" in confidence(0.97, 0.5)
    assert confidence(0.35, 0.5).endswith("a moderate call.") and confidence(0.52, 0.5).endswith("borderline call.")


def test_forensic_encoder_tokens_are_per_tile_and_enter_the_model():
    """The frozen forensic encoder: one token per tile, each reading its own tile (a change in one
    corner moves that corner's token most), and a tiny-forensic model detects with it end to end."""
    from unigendet import create_model, get_config
    from unigendet.unified.encoders import build_encoder
    from unigendet.unified.inference import detect
    from unigendet.unified.samples import SampleBuilder
    from unigendet.unified.tokenizer import ByteTokenizer

    cfg = get_config("tiny-forensic")
    builder = SampleBuilder(cfg, ByteTokenizer())
    enc = builder.encoder
    assert enc is builder.encoder  # built once, held by the builder
    x = noise(256)
    y = x.clone()
    y[:, :, :64, :64] = smooth(x, 7)[:, :, :64, :64]  # top-left tile only
    tx, ty = enc(x)[0], enc(y)[0]
    assert tx.shape == (16, cfg.vit.encoder_dim) and enc.dim == cfg.vit.encoder_dim  # computed from the layout
    assert torch.allclose(enc(torch.cat([x, y]))[0], tx, atol=1e-4)  # an image's tokens do not depend on its batch
    moved = (tx - ty).norm(dim=1)
    assert moved.argmax() == 0 and moved[0] > 2 * moved[[5, 10, 15]].max()  # deep taps see wider
    with pytest.raises(ValueError, match="256-px"):
        enc(noise(64))
    model = create_model(cfg).eval()
    latents = [torch.randn(cfg.latent.channels, 16, 16) for _ in range(2)]
    (a, b) = detect(model, builder, latents, [x[0], y[0]])
    assert 0 <= a.p_fake <= 1 and a.p_fake != b.p_fake
    with pytest.raises(ValueError, match="unknown understanding encoder"):
        build_encoder("nope")
    with pytest.raises(ValueError, match="trained ViT"):
        _ = SampleBuilder(get_config("tiny"), ByteTokenizer()).encoder


def test_swapping_the_understanding_path_keeps_everything_else():
    from unigendet import create_model, get_config
    from unigendet.unified.model import UNDERSTANDING, swap_understanding

    model = create_model(get_config("tiny"))
    swapped = swap_understanding(model, get_config("tiny-forensic"))
    assert swapped.config.vit.encoder == "forensic" and swapped.config.vit_image_size == 256
    assert swapped.config.latent == model.config.latent
    old, new = model.state_dict(), swapped.state_dict()
    for k, v in new.items():
        if not k.startswith(UNDERSTANDING):
            assert torch.equal(v, old[k]), k
    assert swapped.connector.fc1.in_features == get_config("tiny-forensic").vit.encoder_dim


def test_reasons_name_the_evidence_for_the_call_and_never_only_against_it():
    from unigendet.explain import reasons

    c = {"fine pixel traces": 1.9, "content and colour": -0.6, "mid-level texture": 0.3}
    assert reasons(c, "fake") == ("Most of the evidence for generated is in fine pixel traces (+1.9); the strongest "
                                  "evidence for a photo is in content and colour (-0.6).")
    assert reasons(c, "real").startswith("Most of the evidence for a photo is in content and colour (-0.6)")
    assert "The evidence is weak" in reasons({"a": 0.2, "b": -0.1}, "fake")
    for label, only_against in (("fake", {"a": -1.0, "b": -0.5}), ("real", {"a": 0.7})):
        text = reasons(only_against, label)
        assert "treat it as uncertain" in text and "Most of the evidence" not in text
    assert reasons(c, "uncertain").startswith("The image's parts disagree. Toward generated: fine pixel traces")
    # evidence that barely moved the logit is never named, on either side
    tiny = {"fine pixel traces": 1.2, "noise-residual statistics": -0.01}
    assert "noise-residual" not in reasons(tiny, "uncertain") and "fine pixel traces" in reasons(tiny, "uncertain")
    assert "noise-residual" not in reasons(tiny, "fake")
    assert "taken out of the image" in reasons(c, "fake", exact=False)
    # whatever the numbers, the first reason named for a call points the same way as the call
    rng = np.random.default_rng(0)
    for _ in range(200):
        vals = dict(zip("abcd", rng.normal(0, 1, 4), strict=True))
        for label, sign in (("fake", 1), ("real", -1)):
            text = reasons(vals, label)
            if text.startswith("Most of the evidence"):
                name = text.split(" is in ")[1].split(" (")[0]
                assert np.sign(vals[name]) == sign


def test_written_reasons_read_back_and_are_checked_against_the_attribution():
    from unigendet.explain import read_reasons, reasons, reasons_agree

    c = {"fine pixel traces": 1.9, "content and colour": -0.6, "mid-level texture": 1.2,
         "noise-residual statistics": 0.1}
    written = reasons(c, "fake", numbers=False)
    assert "(" not in written
    got = read_reasons(written)
    assert (got.side, got.support, got.against) == ("fake", ("fine pixel traces", "mid-level texture"),
                                                     "content and colour")
    assert read_reasons(reasons(c, "fake")) == got  # the numbers do not change the reading
    assert reasons_agree(written, c, "fake") and reasons_agree(reasons(c, "real", numbers=False), c, "real")
    assert not reasons_agree(written, c, "real")  # the verdict it supports is not the one shown
    swapped = written.replace("fine pixel traces and mid-level texture", "mid-level texture and fine pixel traces")
    assert not reasons_agree(swapped, c, "fake")  # the strongest evidence named wrongly
    wrong_against = written.replace("is in content and colour", "is in noise-residual statistics")
    assert not reasons_agree(wrong_against, c, "fake")
    only_against = {"fine pixel traces": -1.0}
    assert reasons_agree(reasons(only_against, "fake", numbers=False), only_against, "fake")
    assert not reasons_agree("This is a fake image.", c, "fake") and read_reasons(None).side is None
    # in an answer, the reasons are neither cue claims nor unparsed sentences
    answer = reference_answer(FAKE, {"periodic": "high", "grid": "low", "texture": "typical"}, written)
    reading = read_claims(answer)
    assert reading.unparsed == [] and reading.made == 3 and reasons_agree(answer, c, "fake")


def test_cue_sentences_drop_the_explainers_verdict_and_say_how_they_relate():
    from unigendet.explain import cue_sentences

    photo_like = "This is a fake image. No upsampling period beyond a photo's. No 8-pixel block grid."
    text = cue_sentences(photo_like, "fake")
    assert "This is a" not in text and text.startswith("The measured cues point the other way")
    assert cue_sentences(photo_like, "real").startswith("The measured cues agree")
    upsampled = "This is a real image. Its fine detail repeats every few pixels, as upsampling leaves it."
    assert cue_sentences(upsampled, "fake").startswith("The measured cues agree")
    assert cue_sentences("This is a fake image.", "fake") is None


def test_the_tile_sentence_names_the_region_behind_the_call():
    from unigendet.explain import evidence, where

    corner = np.full((4, 4), 0.1)
    corner[0, 0] = 0.9
    assert where(corner, "fake").startswith("The upper left reads most clearly as generated")
    assert where(corner, "real").startswith("The ") and "reads most clearly as a photo" in where(corner, "real")
    assert where(corner, "uncertain").startswith("Its parts disagree: the upper left reads as generated")
    assert where(np.full((4, 4), 0.62), "fake").startswith("Every part of the image reads alike")
    assert evidence(0.7, 0.5, None, "fake") == "The detector's p_fake is 0.70 against its threshold 0.50: a " \
        "moderate call."  # no tile map: no tile sentence
