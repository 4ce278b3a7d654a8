"""The visibility matrix of a packed batch, entry by entry, against the split rules."""

import torch

from unigendet.unified.packing import CAUSAL, FULL, NOISE, ImageTokens, Sample, Split, block_diagonal, pack

VS, VE = 1000, 1001


def img(n_rows, dim=4):
    return ImageTokens(torch.zeros(n_rows, dim), (1, n_rows))


def small_batch():
    det = Sample([
        Split(FULL, latent=img(2)),  # [vs L L ve]
        Split(FULL, vit=img(2, 3)),  # [vs V V ve]
        Split(CAUSAL, text=[1, 2]),  # question
        Split(CAUSAL, text=[3, 4, 5], loss=True, cls=True, cls_label=0),  # answer
    ])
    t2i = Sample([
        Split(CAUSAL, text=[6, 7]),  # caption
        Split(NOISE, latent=ImageTokens(torch.zeros(2, 4), (1, 2), t=0.5, target=torch.ones(2, 4))),
    ])
    return pack([det, t2i], vision_start=VS, vision_end=VE, vit_side=8, latent_side=8)


def expected_visibility():
    """The rules written out by hand, token by token, for `small_batch`."""
    # (sample, split, attention type) of every token, in sequence order
    roles = (
        [(0, 0, FULL)] * 4 + [(0, 1, FULL)] * 4 + [(0, 2, CAUSAL)] * 2 + [(0, 3, CAUSAL)] * 3
        + [(1, 0, CAUSAL)] * 2 + [(1, 1, NOISE)] * 4
    )
    n = len(roles)
    m = torch.zeros(n, n, dtype=torch.bool)
    for i, (si, pi, _) in enumerate(roles):
        for j, (sj, pj, aj) in enumerate(roles):
            if si != sj:
                continue  # samples are isolated
            if pj < pi:
                m[i, j] = aj != NOISE  # earlier splits are visible unless noised
            elif pj == pi:
                m[i, j] = aj != CAUSAL or j <= i  # causal text, bidirectional images
    return m


def test_visibility_matches_rules_entry_by_entry():
    batch = small_batch()
    got = block_diagonal(batch.masks())
    want = expected_visibility()
    assert got.shape == want.shape == (19, 19)
    diff = (got != want).nonzero().tolist()
    assert not diff, f"entries differing from the rules: {diff}"


def test_noised_block_hidden_and_caption_causal():
    m = block_diagonal(small_batch().masks())
    noise = slice(15, 19)
    assert not m[:15, noise].any()  # no other token sees the noised block
    assert m[noise, noise].all()  # bidirectional within
    assert m[noise, 13:15].all()  # sees its caption
    assert not m[13, 14] and m[14, 13]  # caption is causal


def test_layout_indices_rope_and_experts():
    b = small_batch()
    # every token of an image block shares one RoPE position; text is consecutive
    assert b.rope_pos.tolist() == [0] * 4 + [1] * 4 + [2, 3] + [4, 5, 6] + [0, 1] + [2] * 4
    assert b.next_rope == [7, 2]  # a noised block does not advance
    assert b.gen_index.tolist() == [1, 2, 16, 17]  # latent tokens only
    assert sorted(b.und_index.tolist() + b.gen_index.tolist()) == list(range(19))
    assert b.text_ids.tolist() == [VS, VE, VS, VE, 1, 2, 3, 4, 5, 6, 7, VS, VE]
    assert b.ce_index.tolist() == [10, 11] and b.ce_targets.tolist() == [4, 5]
    assert b.cls_index.tolist() == [10] and b.cls_labels.tolist() == [0]
    assert b.mse_index.tolist() == [16, 17]
    assert b.vit_lens == [2] and b.vit_index.tolist() == [5, 6]
    assert b.latent_t.tolist() == [0.0, 0.0, 0.5, 0.5]


def test_split_validation():
    import pytest

    with pytest.raises(ValueError):
        Split(FULL, text=[1])
    with pytest.raises(ValueError):
        Split(NOISE, vit=img(1))
    with pytest.raises(ValueError):
        ImageTokens(torch.zeros(3, 4), (2, 2))
    with pytest.raises(ValueError, match="position table"):
        pack([Sample([Split(FULL, latent=ImageTokens(torch.zeros(9, 4), (1, 9)))])],
             vision_start=VS, vision_end=VE, vit_side=8, latent_side=8)


def test_noised_block_hidden_from_later_splits():
    """[caption | noised | clean | text]: nothing outside the noised block sees it."""
    sample = Sample([
        Split(CAUSAL, text=[1]),
        Split(NOISE, latent=ImageTokens(torch.zeros(1, 4), (1, 1), t=0.5)),
        Split(FULL, latent=img(1)),
        Split(CAUSAL, text=[2, 3]),
    ])
    b = pack([sample], vision_start=VS, vision_end=VE, vit_side=8, latent_side=8)
    m = b.masks()[0]
    noise = slice(1, 4)
    assert m[noise, noise].all() and m[noise, 0].all()
    assert not m[4:, noise].any(), "later splits must not see the noised block"
    assert m[4:, 0].all() and m[7:, 4:7].all()
    assert b.rope_pos.tolist() == [0, 1, 1, 1, 1, 1, 1, 2, 3]
