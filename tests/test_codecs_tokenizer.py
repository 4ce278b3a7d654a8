import pytest
import torch

from unigendet.codecs import ConvVAE, PixelCodec, build_codec
from unigendet.labels import FAKE, REAL
from unigendet.unified.patches import patchify, unpatchify
from unigendet.unified.prompts import detection_answer, parse_verdict
from unigendet.unified.tokenizer import ByteTokenizer, get_tokenizer


def test_pixel_codec_is_exact_inverse():
    codec = PixelCodec(48, 4)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    z = codec.encode(x)
    assert z.shape == (2, 48, 8, 12)
    torch.testing.assert_close(codec.decode(z), x)
    with pytest.raises(ValueError, match="multiple"):
        codec.encode(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="channels"):
        PixelCodec(16, 4)


def test_conv_vae_shapes_and_registry():
    vae = build_codec("conv-vae", 16, 8)
    assert isinstance(vae, ConvVAE)
    z = vae.encode(torch.rand(1, 3, 64, 32) * 2 - 1)
    assert z.shape == (1, 16, 8, 4)
    assert vae.decode(z).shape == (1, 3, 64, 32)
    with pytest.raises(ValueError, match="unknown codec"):
        build_codec("nope", 16, 8)


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 4 * 6, dtype=torch.float).reshape(2, 4, 6)
    rows, grid = patchify(x, 2)
    assert grid == (2, 3) and rows.shape == (6, 8)
    # row 0 is the top-left 2x2 patch flattened as (py, px, c), channel fastest
    assert rows[0].tolist() == [x[0, 0, 0], x[1, 0, 0], x[0, 0, 1], x[1, 0, 1],
                                x[0, 1, 0], x[1, 1, 0], x[0, 1, 1], x[1, 1, 1]]
    torch.testing.assert_close(unpatchify(rows, grid, 2), x)


def test_byte_tokenizer():
    tok = get_tokenizer("byte")
    assert isinstance(tok, ByteTokenizer)
    text = "Ceci n'est pas une pipe — 🙂"
    assert tok.decode(tok.encode(text)) == text
    specials = {tok.im_start, tok.im_end, tok.vision_start, tok.vision_end}
    assert len(specials) == 4 and min(specials) >= 256 and max(specials) < tok.vocab_size
    assert tok.decode([tok.im_start, *tok.encode("ok"), tok.im_end]) == "ok"
    with pytest.raises(ValueError):
        get_tokenizer("gpt5")


def test_verdict_parsing():
    assert parse_verdict(detection_answer(FAKE, "Blurry hands.")) == FAKE
    assert parse_verdict("this is a REAL image; sensor noise") == REAL
    assert parse_verdict("I cannot tell.") is None
    assert parse_verdict("This is an image.") is None


def write_tokenizer_json(path, specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                                          "<|vision_end|>")):
    """A small byte-level BPE tokenizer.json built with `tokenizers`, special tokens added
    the way Qwen2's file has them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["This is a fake image.", "This is a real image.", "a red fox in the snow"] * 20,
                            trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    return path


def test_local_tokenizer_json(tmp_path, monkeypatch):
    from unigendet.unified.tokenizer import QWEN2_IDS, LocalTokenizer

    d = write_tokenizer_json(tmp_path / "tok")
    tok = LocalTokenizer(d)
    text = "This is a fake image. Ünïcode too."
    ids = tok.encode(text)
    assert tok.decode(ids) == text and tok.im_start not in ids
    assert tok.decode([tok.im_start, *ids, tok.im_end]) == text  # specials are skipped when decoding
    assert len({tok.im_start, tok.im_end, tok.vision_start, tok.vision_end, tok.pad}) == 5
    with pytest.raises(ValueError, match="ids differ"):
        LocalTokenizer(d, QWEN2_IDS)  # a small file is not Qwen2's
    with pytest.raises(ValueError, match="not in the vocabulary"):
        LocalTokenizer(write_tokenizer_json(tmp_path / "bad", specials=("<|im_start|>",)))
    monkeypatch.delenv("UNIGENDET_TOKENIZER", raising=False)
    with pytest.raises(ValueError, match="local files"):
        get_tokenizer("qwen2")
    with pytest.raises(FileNotFoundError):
        LocalTokenizer(tmp_path / "nowhere")


def test_unified_model_runs_with_a_local_tokenizer(tmp_path):
    from unigendet.unified.inference import detect
    from unigendet.unified.presets import create_model, get_config
    from unigendet.unified.samples import SampleBuilder
    from unigendet.unified.tokenizer import LocalTokenizer

    tok = LocalTokenizer(write_tokenizer_json(tmp_path / "tok"))
    cfg = get_config("tiny")
    cfg = cfg.replace(llm=cfg.llm.__class__(**{**cfg.llm.__dict__, "vocab_size": tok.vocab_size}))
    model = create_model(cfg).eval()
    builder = SampleBuilder(cfg, tok)
    image = torch.rand(3, 64, 64) * 2 - 1
    latent = torch.randn(cfg.latent.channels, 16, 16)
    out = detect(model, builder, [latent], [image], explain=True, max_new_tokens=5)
    assert 0 <= out[0].p_fake <= 1 and isinstance(out[0].text, str)
