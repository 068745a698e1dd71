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
"""Training samples of one scale: the real image at that scale, the real image one scale down upsampled back (the
coarse input), the condition at that scale, and aligned random patches of all three."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, RandomizableTransform, Transform
from monai.utils import convert_to_tensor, ensure_tuple_rep

from monai_msgan.transforms.pyramid import DOWNSAMPLE_MODES, downsample, upsample
from monai_msgan.utils.scales import SCALE_FACTOR

__all__ = [
    "ScaleTrainingInputs",
    "ScaleTrainingInputsd",
    "ScaleTrainingInputsD",
    "ScaleTrainingInputsDict",
    "RandScalePatch",
    "RandScalePatchd",
    "RandScalePatchD",
    "RandScalePatchDict",
]


def _to_scale(x: torch.Tensor, scale: int, num_scales: int, mode: str) -> torch.Tensor:
    x = convert_to_tensor(x, track_meta=False)
    factor = SCALE_FACTOR ** (num_scales - 1)
    if any(s % factor for s in x.shape[1:]):
        raise ValueError(
            f"image size {list(x.shape[1:])} must be divisible by {factor} for {num_scales} scales; "
            "resize or pad it first (e.g. Resized + SpatialPadd)."
        )
    for _ in range(num_scales - 1 - scale):
        x = downsample(x, mode)
    return x


class ScaleTrainingInputs(Transform):
    """From a full-resolution channel-first image, make the training pair of scale ``scale``.

    Returns ``(real, coarse)``: ``real`` is the image at scale ``scale`` (area-downsampled from the input),
    ``coarse`` is the real image one scale down, upsampled ×2 back to the size of ``real`` (``None`` for the
    base, scale 0). This is what the patch generator of that scale learns to refine.

    Args:
        scale: the scale to train (0 = base, ``num_scales - 1`` = full resolution).
        num_scales: number of scales, the base included.
    """

    def __init__(self, scale: int, num_scales: int) -> None:
        if not 0 <= scale < num_scales:
            raise ValueError(f"scale must be in 0..{num_scales - 1}, got {scale}.")
        self.scale = scale
        self.num_scales = num_scales

    def __call__(self, img: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        real = _to_scale(img, self.scale, self.num_scales, "area")
        coarse = upsample(downsample(real)) if self.scale > 0 else None
        return real, coarse


class ScaleTrainingInputsd(MapTransform):
    """Dictionary version of :class:`ScaleTrainingInputs`.

    Replaces ``image_key`` by the real image at the scale, adds ``coarse_key`` (not for the base) and brings each
    of ``condition_keys`` to the scale's resolution (``condition_mode``: ``"area"`` for sketches and edge maps,
    ``"nearest"`` for label maps).
    """

    def __init__(
        self,
        image_key: str,
        scale: int,
        num_scales: int,
        coarse_key: str = "coarse",
        condition_keys: KeysCollection | None = None,
        condition_mode: str = "area",
        allow_missing_keys: bool = False,
    ) -> None:
        condition_keys = [] if condition_keys is None else list(ensure_tuple_rep(condition_keys, 1))
        super().__init__([image_key, *condition_keys], allow_missing_keys)
        if condition_mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"condition_mode must be one of {DOWNSAMPLE_MODES}, got {condition_mode!r}.")
        self.inputs = ScaleTrainingInputs(scale, num_scales)
        self.image_key = image_key
        self.coarse_key = coarse_key
        self.condition_keys = condition_keys
        self.condition_mode = condition_mode

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if key == self.image_key:
                real, coarse = self.inputs(d[key])
                d[key] = real
                if coarse is not None:
                    d[self.coarse_key] = coarse
            else:
                d[key] = _to_scale(d[key], self.inputs.scale, self.inputs.num_scales, self.condition_mode)
        return d


class RandScalePatch(RandomizableTransform):
    """Crop a random patch of ``patch_size`` whose corner lies on a multiple of ``align`` pixels.

    With ``align=2`` the patch covers whole pixels of the scale below, so the area-downsampled patch equals the
    corresponding region of the coarser scale exactly. A ``patch_size`` equal to the image size returns the image.
    Call :meth:`randomize` with the spatial size once, then apply with ``randomize=False`` to crop several aligned
    images at the same place (the dictionary version does this).
    """

    def __init__(self, patch_size: Sequence[int] | int, align: int = SCALE_FACTOR) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.patch_size = patch_size
        self.align = align
        self._start: tuple[int, ...] | None = None

    def randomize(self, spatial_size: Sequence[int]) -> None:  # type: ignore[override]
        size = tuple(int(s) for s in spatial_size)
        patch = ensure_tuple_rep(self.patch_size, len(size))
        if any(p > s for p, s in zip(patch, size)):
            raise ValueError(f"patch size {list(patch)} is larger than the image {list(size)} at this scale.")
        starts = []
        for p, s in zip(patch, size):
            positions = (s - p) // self.align + 1
            starts.append(int(self.R.randint(positions)) * self.align)
        self._start = tuple(starts)

    @property
    def start(self) -> tuple[int, ...] | None:
        """Corner of the last drawn patch."""
        return self._start

    def __call__(self, img: Any, randomize: bool = True) -> torch.Tensor:  # type: ignore[override]
        img = convert_to_tensor(img, track_meta=False)
        if randomize:
            self.randomize(img.shape[1:])
        if self._start is None:
            raise RuntimeError("call randomize() before cropping with randomize=False.")
        patch = ensure_tuple_rep(self.patch_size, img.ndim - 1)
        region = tuple(slice(s, s + p) for s, p in zip(self._start, patch))
        return img[(slice(None), *region)]


class RandScalePatchd(Randomizable, MapTransform):
    """Dictionary version of :class:`RandScalePatch`: crops every key at the same place.

    With ``num_samples > 1`` it returns a list of that many dicts (like MONAI's ``RandSpatialCropSamplesd``);
    MONAI's ``list_data_collate`` flattens them into the batch.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: Sequence[int] | int,
        num_samples: int = 1,
        align: int = SCALE_FACTOR,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
        self.cropper = RandScalePatch(patch_size, align)
        self.num_samples = num_samples

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandScalePatchd:
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.cropper.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any] | list[dict[Hashable, Any]]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d if self.num_samples == 1 else [dict(d) for _ in range(self.num_samples)]
        spatial = convert_to_tensor(d[first], track_meta=False).shape[1:]
        for key in self.key_iterator(d):
            if tuple(d[key].shape[1:]) != tuple(spatial):
                raise ValueError(
                    f"'{key}' has spatial size {list(d[key].shape[1:])} but '{first}' has {list(spatial)}; "
                    "all keys must be at the same scale."
                )
        out = []
        for _ in range(self.num_samples):
            self.randomize(spatial)
            sample = dict(d)
            for key in self.key_iterator(sample):
                sample[key] = self.cropper(sample[key], randomize=False)
            out.append(sample)
        return out[0] if self.num_samples == 1 else out


ScaleTrainingInputsD = ScaleTrainingInputsDict = ScaleTrainingInputsd
RandScalePatchD = RandScalePatchDict = RandScalePatchd
