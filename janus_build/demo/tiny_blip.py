"""A tiny, randomly initialised BLIP saved in ``from_pretrained`` layout (no download).

Tests, the CPU benchmark and ``janus demo`` use it to run the real captioning path offline:
same classes, same processor, same ``generate`` call as ``Salesforce/blip-image-captioning-base``,
at a few kilobytes of weights. Its captions are random words; they show the plumbing, not BLIP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# A small word-piece vocabulary: enough for BertTokenizer to round-trip the prompt.
WORDS = [
    "a",
    "picture",
    "of",
    "dog",
    "cat",
    "bird",
    "sitting",
    "on",
    "the",
    "grass",
    "with",
    "man",
    "holding",
    "tench",
    "goldfinch",
    "red",
    "blue",
    "green",
    "in",
    "and",
]


def tiny_blip_config(vocab_size: int, image_size: int, *, bos: int, sep: int, eos: int) -> Any:
    """The tiny BLIP architecture (1-layer towers of width 32) for a vocabulary and image size."""
    from transformers import BlipConfig

    layer = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    return BlipConfig(
        text_config=dict(
            layer,
            vocab_size=vocab_size,
            max_position_embeddings=64,
            encoder_hidden_size=32,
            bos_token_id=bos,
            pad_token_id=0,
            sep_token_id=sep,
            eos_token_id=eos,
        ),
        vision_config=dict(layer, image_size=image_size, patch_size=16),
        projection_dim=32,
    )


def build_tiny_blip(directory: str | os.PathLike[str], image_size: int = 32, seed: int = 0) -> Path:
    """Write a tiny BLIP model + processor to ``directory`` (idempotent) and return it."""
    import torch
    from transformers import BertTokenizer, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    directory = Path(directory)
    if (directory / "config.json").is_file() and (directory / "preprocessor_config.json").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[DEC]",
        *WORDS,
        *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    ]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"), bos_token="[DEC]")
    torch.manual_seed(seed)
    config = tiny_blip_config(len(vocab), image_size, bos=vocab.index("[DEC]"), sep=3, eos=3)
    BlipForConditionalGeneration(config).save_pretrained(directory)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}), tokenizer=tokenizer
    )
    processor.save_pretrained(directory)
    return directory
