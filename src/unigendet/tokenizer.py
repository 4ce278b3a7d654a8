"""Tokenizers. The default is an offline byte-level tokenizer; any tokenizer with
this interface (ids of the four special tokens, encode, decode) plugs in."""

from __future__ import annotations

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


def get_tokenizer(name: str = "byte") -> Tokenizer:
    if name == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer {name!r}; available: byte")
