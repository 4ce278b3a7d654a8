"""Content-aligned fakes: `unigendet data regenerate` copies every real photo of a pool through an
autoencoder, keeping size, split and group, resuming after a kill."""

import csv
import random

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.codecs import build_codec
from unigendet.corpus import regenerate as rg
from unigendet.data.readers import read_source
from unigendet.data.records import DataError
from unigendet.labels import FAKE, REAL


def _pool(root, sizes=((64, 64), (70, 50), (64, 64))):
    """A manifest pool: reals of the given sizes (one not a multiple of 8), one fake, one unreadable real."""
    rng = np.random.RandomState(0)
    rows = []
    for i, (w, h) in enumerate(sizes):
        path = root / "images" / "real" / f"r{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        rows.append([f"images/real/r{i}.png", "real", "photo", "train" if i else "val", f"repo:g{i}", "jpeg", 400, 300])
    (root / "images" / "fake").mkdir()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(root / "images" / "fake" / "f.png")
    rows.append(["images/fake/f.png", "fake", "gen", "train", "repo:f", "png", 64, 64])
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "generator", "split", "group", "original_format", "original_width",
                    "original_height"])
        w.writerows(rows)
    return root


def _taef2(folder):
    torch.manual_seed(0)
    codec = build_codec("taef2", 32, 8).eval()
    folder.mkdir()
    torch.save(codec.encoder.state_dict(), folder / "taef2_encoder.pth")
    torch.save(codec.decoder.state_dict(), folder / "taef2_decoder.pth")
    return folder


@pytest.fixture
def setup(tmp_path, one_thread):
    return _pool(tmp_path / "pool"), _taef2(tmp_path / "taef2"), tmp_path / "out"


def test_every_real_gets_aligned_copies_that_keep_size_split_and_group(setup):
    pool, weights, out = setup
    records = rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights)),
                                   progress=False)
    reals = [r for r in read_source(pool) if r.label == REAL]
    assert len(records) == 2 * len(reals) and all(r.label == FAKE for r in records)
    assert {r.generator for r in records} == {"taef2-regenerated", "taef2-region"}
    back = read_source(out, strict=True)  # the folder is a pool of its own, complete
    assert sorted(str(r.path) for r in back) == sorted(str(r.path) for r in records)
    by_source = {}
    for r in back:
        by_source.setdefault(r.source, []).append(r)
    for real in reals:
        copies = by_source[str(real.path.relative_to(pool))]
        assert len(copies) == 2
        for c in copies:
            assert (c.split, c.group, c.original_width, c.original_format) == (
                real.split, real.group_key, real.original_width, real.original_format)
            assert Image.open(c.path).size == Image.open(real.path).size  # odd sizes too: padded, cropped back
    # the whole copy differs everywhere a little; the region copy keeps the real's pixels outside its region
    real = next(r for r in reals if Image.open(r.path).size == (64, 64))
    copies = {r.generator: r for r in by_source[str(real.path.relative_to(pool))]}
    whole, region = copies["taef2-regenerated"], copies["taef2-region"]
    a, b, c = (np.asarray(Image.open(p.path)).astype(int) for p in (real, whole, region))
    assert (np.abs(a - b).max(axis=2) > 0).mean() > 0.9
    kept = np.abs(a - c).max(axis=2) == 0
    assert 0.1 < kept.mean() < 0.9
    assert "taef2" in (out / "DATACARD.md").read_text()


def test_a_killed_run_resumes_and_keeps_finished_images(setup, monkeypatch):
    pool, weights, out = setup
    cfg = rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights), region=False)
    real_regenerate, calls = rg.regenerate, []

    def dies_on_second(codec, img):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_regenerate(codec, img)

    monkeypatch.setattr(rg, "regenerate", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        rg.build_regenerated(cfg, progress=False)
    with pytest.raises(DataError, match="interrupted"):
        read_source(out)  # a half-built folder is never read as a whole one
    done = list(out.rglob("*.webp"))
    assert len(done) == 1 and not list(out.rglob("*.tmp-*"))
    stamp = done[0].stat().st_mtime_ns
    monkeypatch.setattr(rg, "regenerate", real_regenerate)
    records = rg.build_regenerated(cfg, progress=False)
    assert len(records) == 3 and done[0].stat().st_mtime_ns == stamp  # resumed: the finished image kept
    assert len(read_source(out, strict=True)) == 3


def test_a_folder_begun_with_other_settings_is_refused(setup):
    pool, weights, out = setup
    cfg = rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights), region=False)
    rg.build_regenerated(cfg, progress=False)
    rg.build_regenerated(cfg, progress=False)  # the same settings: a resume, nothing to do
    with pytest.raises(ValueError, match="other settings"):
        rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights),
                                                 match_jpeg=False, region=False), progress=False)


def test_unreadable_reals_are_skipped_and_reported(setup, capsys):
    pool, weights, out = setup
    (pool / "images" / "real" / "r1.png").write_bytes(b"not an image")
    records = rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights),
                                                       region=False), progress=False)
    assert len(records) == 2
    assert "skipped" in capsys.readouterr().out and "Skipped (unreadable): 1" in (out / "DATACARD.md").read_text()


def test_clear_errors(setup):
    pool, weights, out = setup
    with pytest.raises(ValueError, match="trained by the project"):
        rg.load_codec(rg.RegenerateConfig(data=str(pool), codec="conv-vae", codec_path=str(weights)))
    with pytest.raises(ValueError, match="--codec-path"):
        rg.load_codec(rg.RegenerateConfig(data=str(pool)))
    with pytest.raises(DataError, match="no real images"):
        rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights),
                                                 splits="test"), progress=False)
    with pytest.raises(ValueError, match="new folder"):
        rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(pool), codec_path=str(weights)),
                             progress=False)


def test_blend_region_is_a_feathered_ellipse():
    x, y = Image.new("RGB", (64, 64), (0, 0, 0)), Image.new("RGB", (64, 64), (255, 255, 255))
    m = np.asarray(rg.blend_region(x, y, random.Random(0)))[..., 0] / 255
    assert m.min() == 0 and m.max() == 1 and 0.1 < m.mean() < 0.6
    assert 0 < ((m > 0) & (m < 1)).mean() < 0.3  # a soft edge, not a hard cut


def _smooth(seed, size=96):
    from scipy.ndimage import gaussian_filter

    x = gaussian_filter(np.random.RandomState(seed).randn(size, size, 3), (2, 2, 0)) * 300 + 128
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def test_jpeg_grids_are_found_at_their_phase_and_matched():
    from unigendet.data.degrade import JPEG

    img = _smooth(0)
    assert rg.grid_phase(img) is None
    jpeg = JPEG(30)(img)
    assert rg.grid_phase(jpeg) == (7, 7)  # boundaries after columns and rows 7, 15, ...
    shifted = Image.fromarray(np.asarray(jpeg)[3:, 5:])  # a crop that does not start on the grid
    phase = rg.grid_phase(shifted)
    assert phase == (2, 4)
    matched = rg.jpeg_on_grid(_smooth(1).crop((0, 0, 91, 93)), phase, 30)
    assert matched.size == (91, 93) and rg.grid_phase(matched) == phase


def test_copies_of_a_jpeg_real_carry_its_grid(setup, monkeypatch):
    """The autoencoder wipes a real's JPEG grid; the copies get it back on the same phase, so the
    grid cannot tell a real from its copy."""
    from unigendet.data.degrade import JPEG

    pool, weights, out = setup
    real = pool / "images" / "real" / "r0.png"
    Image.fromarray(np.asarray(JPEG(30)(_smooth(2)))[3:67, 5:69]).save(real)
    phase = rg.grid_phase(Image.open(real))
    assert phase is not None
    monkeypatch.setattr(rg, "JPEG_QUALITY", (30, 30))
    from PIL import ImageFilter

    # an untrained autoencoder outputs noise; a smooth stand-in shows what decoding does to the grid
    monkeypatch.setattr(rg, "regenerate", lambda codec, img: img.filter(ImageFilter.GaussianBlur(1.5)))
    records = rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out), codec_path=str(weights)),
                                   progress=False)
    copies = [r for r in records if r.source == "images/real/r0.png"]
    assert len(copies) == 2 and all(rg.grid_phase(Image.open(c.path)) == phase for c in copies)
    plain = rg.build_regenerated(rg.RegenerateConfig(data=str(pool), out=str(out.parent / "plain"),
                                                     codec_path=str(weights), match_jpeg=False), progress=False)
    whole = next(r for r in plain if r.source == "images/real/r0.png" and r.generator == "taef2-regenerated")
    assert rg.grid_phase(Image.open(whole.path)) != phase


def test_the_command_builds_the_folder(setup, capsys):
    from unigendet.cli import main

    pool, weights, out = setup
    assert main(["data", "regenerate", str(pool), "--codec-path", str(weights), "--out", str(out), "--no-region",
                 "--quiet"]) == 0
    assert "3 regenerated images" in capsys.readouterr().out
    assert len(read_source(out, strict=True)) == 3 and (out / "regenerate.json").is_file()
