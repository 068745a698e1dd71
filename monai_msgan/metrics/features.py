# Copyright (c) monai-msgan contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""FID and MMD on features of a user-provided TorchScript extractor (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.metrics import FIDMetric, MMDMetric

__all__ = ["FeatureDistances"]


class FeatureDistances:
    """FID and MMD between real and generated images, on features of a TorchScript model the user provides.

    The extractor maps a ``(B, C, *spatial)`` batch to ``(B, D)`` features (or anything that flattens to it). FID needs
    many more samples than feature dimensions to be meaningful. People use, for X-rays, ImageNet Inception-v3 or a
    RadImageNet / TorchXRayVision DenseNet exported with ``torch.jit.trace``; for CT, MedicalNet ResNets or
    slice-wise 2D extractors. A TorchScript file runs code: load only files you trust.

    Args:
        extractor: path of a TorchScript file, or a module.
        device: where features are computed.
        batch_size: images per forward pass.
    """

    def __init__(
        self, extractor: str | os.PathLike | torch.nn.Module, device: str = "cpu", batch_size: int = 8
    ) -> None:
        if isinstance(extractor, (str, os.PathLike)):
            path = Path(extractor)
            if not path.is_file():
                raise FileNotFoundError(f"feature extractor {path} does not exist.")
            try:
                extractor = torch.jit.load(str(path), map_location=device)
            except Exception as e:
                raise ValueError(f"{path} is not a TorchScript model: {e}") from e
        self.extractor = extractor.to(device).eval()
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        out = [
            self.extractor(images[i : i + self.batch_size].float().to(self.device)).reshape(
                min(self.batch_size, images.shape[0] - i), -1
            )
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(out).cpu().double()

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        fr, ff = self.features(real), self.features(fake)
        return {"fid": float(FIDMetric()(ff, fr)), "mmd": float(MMDMetric()(ff, fr))}
