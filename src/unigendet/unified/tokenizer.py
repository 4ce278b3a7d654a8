"""Tokenizers. The default is an offline byte-level tokenizer; any tokenizer with
this interface (ids of the four special tokens, encode, decode) plugs in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>")


class Tokenizer(Protocol):
    vocab_size: int
    im_start: int  # turn start
    im_end: int  # turn end (decoding stops here)
    vision_start: int
    vision_end: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes are ids 0..255; special tokens follow. No files, no network."""

    def __init__(self) -> None:
        self.specials = {tok: 256 + i for i, tok in enumerate(SPECIAL_TOKENS)}
        self.im_start = self.specials["<|im_start|>"]
        self.im_end = self.specials["<|im_end|>"]
        self.vision_start = self.specials["<|vision_start|>"]
        self.vision_end = self.specials["<|vision_end|>"]
        self.pad = self.specials["<|endoftext|>"]
        self.vocab_size = 256 + len(SPECIAL_TOKENS)

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


# Qwen2.5's ids of BAGEL's special tokens: a Qwen2 tokenizer that disagrees is the wrong file.
QWEN2_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
             "<|vision_start|>": 151652, "<|vision_end|>": 151653}
TOKENIZER_ENV = "UNIGENDET_TOKENIZER"


class LocalTokenizer:
    """A Hugging Face `tokenizer.json` read from local files with the `tokenizers` library
    (BAGEL ships Qwen2.5's). Special tokens are looked up by their text; `expected_ids`
    pins them (Qwen2: `QWEN2_IDS`)."""

    def __init__(self, path: str | os.PathLike, expected_ids: dict[str, int] | None = None):
        from tokenizers import Tokenizer as HFTokenizer

        file = Path(path)
        file = file / "tokenizer.json" if file.is_dir() else file
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        self.tok = HFTokenizer.from_file(str(file))
        ids = {t: self.tok.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"{file}: special tokens {missing} are not in the vocabulary")
        wrong = {t: (ids[t], i) for t, i in (expected_ids or {}).items() if ids[t] != i}
        if wrong:
            raise ValueError(f"{file}: special token ids differ from the expected ones (got, want): {wrong}")
        self.specials = ids
        self.im_start, self.im_end = ids["<|im_start|>"], ids["<|im_end|>"]
        self.vision_start, self.vision_end = ids["<|vision_start|>"], ids["<|vision_end|>"]
        self.pad = ids["<|endoftext|>"]
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


def get_tokenizer(name: str = "byte", path: str | os.PathLike | None = None) -> Tokenizer:
    """"byte" (built in), or "qwen2" / "local" from local files: `path` (a directory holding
    tokenizer.json, e.g. the BAGEL checkpoint directory, or the file), else $UNIGENDET_TOKENIZER."""
    if name == "byte":
        return ByteTokenizer()
    if name in ("qwen2", "local"):  # local: any tokenizer.json, special ids not pinned
        path = path or os.environ.get(TOKENIZER_ENV)
        if not path:
            raise ValueError(f"the {name} tokenizer is read from local files: pass its directory or set "
                             f"${TOKENIZER_ENV} (nothing is downloaded)")
        return LocalTokenizer(path, QWEN2_IDS if name == "qwen2" else None)
    raise ValueError(f"unknown tokenizer {name!r}; available: byte, qwen2, local")
