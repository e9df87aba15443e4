"""The optional second pass: CLIP image-embedding similarity (open_clip), on a GPU when there is one.

Perceptual hashes find copies; an embedding finds near-copies that moved more than a hash
tolerates (heavier crops, small rotations, overlays). Every evaluation image and every
training image is embedded once (L2-normalised); a pair is flagged when its cosine similarity
is at least ``min_clip_similarity``. Evaluation embeddings are cached in ``DIR/_eval/``;
training pairs go to ``DIR/clip/NNNNN.parquet``, one per input shard, with done-markers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from janus_build.errors import ConfigError, MissingResourceError

log = logging.getLogger(__name__)

TOP_K = 5  # most evaluation images kept per training image


class Embedder(Protocol):
    """Anything that turns PIL images into L2-normalised float32 rows."""

    device: str

    def embed(self, images: Sequence[Any]) -> np.ndarray: ...


class OpenClipEmbedder:
    """An open_clip model's image tower with its evaluation preprocessing."""

    def __init__(self, model: Any, preprocess: Any, device: str, batch_size: int = 128) -> None:
        self.model = model.eval().to(device)
        self.preprocess = preprocess
        self.device = device
        self.batch_size = batch_size

    def embed(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack([self.preprocess(im) for im in images[start : start + self.batch_size]])
                features = self.model.encode_image(batch.to(self.device)).float()
                rows.append(torch.nn.functional.normalize(features, dim=-1).cpu().numpy())
        width = int(getattr(self.model, "embed_dim", 0) or (rows[0].shape[1] if rows else 0))
        return np.concatenate(rows) if rows else np.empty((0, width), np.float32)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no GPU (use --device cpu or auto)")
    return device


def load_embedder(model_name: str, pretrained: str, device: str, batch_size: int) -> OpenClipEmbedder:
    """``open_clip.create_model_and_transforms(model_name, pretrained=...)`` on ``device``.

    Raises:
        ConfigError: open_clip knows no such model. MissingResourceError: the weights cannot be loaded.
    """
    import open_clip

    if model_name not in open_clip.list_models():
        raise ConfigError(f"--clip-model {model_name!r}: not an open_clip model (see open_clip.list_models())")
    device = resolve_device(device)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device)
    except Exception as exc:  # network, missing file, unknown tag: all mean "weights not available"
        raise MissingResourceError(
            f"--clip-model {model_name} --clip-pretrained {pretrained}: cannot load the weights ({exc}); "
            "a local checkpoint path works as --clip-pretrained"
        ) from None
    return OpenClipEmbedder(model, preprocess, device, batch_size)


def similar_pairs(
    queries: np.ndarray, references: np.ndarray, threshold: float, device: str = "cpu", chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(query, reference, similarity)`` of the up to :data:`TOP_K` references per query at or above ``threshold``."""
    import torch

    out_q, out_r, out_s = [], [], []
    refs = torch.from_numpy(np.ascontiguousarray(references, dtype=np.float32)).to(device)
    k = min(TOP_K, refs.shape[0])
    for start in range(0, len(queries), chunk):
        block = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32)).to(device)
        if not k or not len(block):
            continue
        sims, idx = torch.topk(block @ refs.T, k, dim=1)
        keep = sims >= threshold
        rows = keep.nonzero(as_tuple=True)[0]
        out_q.append((rows + start).cpu().numpy())
        out_r.append(idx[keep].cpu().numpy())
        out_s.append(sims[keep].float().cpu().numpy())
    if not out_q:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(out_q), np.concatenate(out_r), np.concatenate(out_s)
