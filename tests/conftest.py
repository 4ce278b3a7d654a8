import pytest
import torch

from unigendet import create_model, get_config
from unigendet.labels import FAKE
from unigendet.unified.flow import interpolate, target_velocity
from unigendet.unified.prompts import detection_answer
from unigendet.unified.samples import SampleBuilder
from unigendet.unified.tokenizer import ByteTokenizer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and are then immune to a busy second core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small built-in corpus (64 px), built once per test session from the photos pip installs only,
    so it is the same whichever Debian photo packages this machine has."""
    from unigendet.corpus.build import CorpusConfig, build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(CorpusConfig(out=str(out), size=64, crops_per_photo=10, autoencoder_steps=10,
                              photo_sources="python", allow_small=True), progress=False)
    return out


@pytest.fixture(scope="session")
def codec_run(corpus, tmp_path_factory):
    """The tiny preset's generation codec, briefly trained on the corpus (`unigendet train codec`)."""
    from unigendet_train.codec import CodecConfig, run_codec

    out = tmp_path_factory.mktemp("codec")
    run_codec(CodecConfig(data=str(corpus), out=str(out), steps=20, batch=8))
    return out


@pytest.fixture
def tiny():
    cfg = get_config("tiny")
    model = create_model(cfg).eval()
    return cfg, model, SampleBuilder(cfg, ByteTokenizer())


def latent_like(cfg, side_tokens):
    lat = cfg.latent
    return torch.randn(lat.channels, side_tokens * lat.patch_size, side_tokens * lat.patch_size)


def detection_and_t2i(cfg, builder, t=0.6, caption="a red fox", align=False):
    """One detection sample with an answer and one text-to-image sample."""
    z_det, z0 = latent_like(cfg, 4), latent_like(cfg, 4)
    image = torch.rand(3, cfg.vit_image_size, cfg.vit_image_size) * 2 - 1
    eps = torch.randn_like(z0)
    det = builder.detection(z_det, image, answer=detection_answer(FAKE, "Smooth skin."), label=FAKE)
    align_target = torch.randn(16, cfg.llm.hidden_size) if align else None
    t2i = builder.text_to_image(caption, interpolate(z0, eps, t), t, target_velocity(z0, eps), align_target)
    return det, t2i


@pytest.fixture(scope="session")
def artifacts():
    """`test-artifacts/` at the checkout root: screenshots and the like, kept after the run."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "test-artifacts"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium driven by Playwright (`.ci/run` installs both)."""
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield browser
        browser.close()
