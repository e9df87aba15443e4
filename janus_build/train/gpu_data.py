"""JPEG decoding and SimCLR / standard augmentation on the training device (``--decode gpu``).

On a fast GPU, CPU workers decoding and augmenting 224-px JPEGs (~5-10 ms per image per core)
become the limit long before a ResNet-50 does. With ``--decode gpu`` the loader workers only read
JPEG bytes from the shards; :class:`DeviceAugment` decodes a whole batch with nvJPEG
(``torchvision.io.decode_jpeg(device="cuda")``) and applies the augmentation as batched tensor
operations. The same code runs on the CPU (used by the tests).

Differences from the PIL pipeline (documented in docs/train.md): colour-jitter operations are
applied in a fixed order (brightness, contrast, saturation, hue) instead of a random one, and
hue is shifted by a rotation in YIQ space (the usual tensor approximation of an HSV hue shift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from janus_build.errors import ConfigError

_GRAY = (0.299, 0.587, 0.114)


def decode_jpegs(jpegs: Sequence[Any], device: Any) -> list[Any]:
    """Decode a list of 1-D uint8 JPEG tensors to RGB uint8 CHW tensors on ``device`` (batched nvJPEG on CUDA)."""
    import warnings

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of TorchCodec; they still work
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return list(decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device))
        except RuntimeError:  # one odd JPEG (CMYK, progressive corner cases) fails the batch: go one by one
            return [_decode_one(j, device) for j in jpegs]


def _decode_one(jpeg: Any, device: Any) -> Any:
    """Decode one JPEG on ``device``, falling back to PIL on the CPU for what nvJPEG rejects."""
    import numpy as np
    from torchvision.io import ImageReadMode, decode_jpeg

    from janus_build.core.imaging import open_image

    try:
        return decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        array = np.asarray(open_image(jpeg.numpy().tobytes()))
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous().to(device)


def _gray(x: Any) -> Any:
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b


def _hue_rotation(angle: Any) -> Any:
    """Per-sample 3x3 RGB matrices rotating hue by ``angle`` radians (YIQ rotation)."""
    device = angle.device
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device)
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(angle), 3, 3, device=device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    return from_yiq @ rot @ to_yiq


class DeviceAugment:
    """Decode + augment a batch of JPEG byte tensors on ``device``; returns normalised float NCHW.

    Args:
        augment: ``simclr`` (the paper's) or ``standard`` (RandomResizedCrop + flip).
        image_size: output side.
        mean, std: normalisation.
        device: where decoding and augmentation run.
    """

    def __init__(self, augment: str, image_size: int, mean: Sequence[float], std: Sequence[float], device: Any) -> None:
        if augment not in ("simclr", "standard"):
            raise ConfigError(f"--augment: expected simclr or standard, got {augment!r}")
        self.augment, self.size, self.device = augment, image_size, device
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # SimCLR: 10% of the side, odd

    def _crop(self, images: Sequence[Any]) -> Any:
        from torchvision.transforms import RandomResizedCrop

        out = torch.empty(len(images), 3, self.size, self.size, device=self.device)
        for k, image in enumerate(images):
            top, left, height, width = RandomResizedCrop.get_params(image, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3])
            crop = image[:, top : top + height, left : left + width].unsqueeze(0).float()
            out[k] = F.interpolate(
                crop, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )[0]
        return out.div_(255.0).clamp_(0.0, 1.0)

    def _jitter(self, x: Any) -> Any:
        n = len(x)
        apply = (torch.rand(n, device=x.device) < 0.8).float().view(n, 1, 1, 1)

        def factor(low: float, high: float) -> Any:
            return 1 + apply * (torch.empty(n, 1, 1, 1, device=x.device).uniform_(low, high) - 1)

        x = (x * factor(0.6, 1.4)).clamp_(0, 1)  # brightness 0.4
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * factor(0.6, 1.4) + mean).clamp_(0, 1)  # contrast 0.4
        gray = _gray(x)
        x = ((x - gray) * factor(0.6, 1.4) + gray).clamp_(0, 1)  # saturation 0.4
        angle = apply.view(n) * torch.empty(n, device=x.device).uniform_(-0.1, 0.1) * 2 * math.pi  # hue 0.1
        x = torch.einsum("nij,njhw->nihw", _hue_rotation(angle), x).clamp_(0, 1)
        return x

    def _blur(self, x: Any) -> Any:
        n, c, h, w = x.shape
        apply = torch.rand(n, device=x.device) < 0.5
        sigma = torch.empty(n, device=x.device).uniform_(0.1, 2.0)
        radius = self.kernel // 2
        grid = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-(grid.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        identity = (grid == 0).to(x.dtype).expand(n, -1)
        kernel = torch.where(apply.view(-1, 1), kernel, identity).repeat_interleave(c, dim=0)  # (n*c, k)
        flat = x.reshape(1, n * c, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, -1), groups=n * c)
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(n * c, 1, -1, 1), groups=n * c)
        return flat.view(n, c, h, w)

    def __call__(self, jpegs: Sequence[Any]) -> Any:
        images = decode_jpegs(jpegs, self.device)
        x = self._crop(images)
        flip = torch.rand(len(x), device=x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.augment == "simclr":
            x = self._jitter(x)
            gray = (torch.rand(len(x), device=x.device) < 0.2).view(-1, 1, 1, 1)
            x = torch.where(gray, _gray(x).expand_as(x), x)
            x = self._blur(x)
        return (x - self.mean) / self.std
