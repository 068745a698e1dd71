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
"""Label maps as the condition of image synthesis: remapping label values to a few classes and encoding them as a
one-hot condition or as class indices (for a learned embedding in the generators).

The condition pyramid of a label map is made by nearest-neighbour downsampling (``ScalePyramid(mode="nearest")``,
``ScaleTrainingInputsd(condition_mode="nearest")``): each coarse voxel takes one voxel of its 2×2(×2) block, so
label values are never mixed. Keeping one voxel commutes with one-hot encoding, so a one-hot condition downsampled
that way is still one-hot at every scale.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor, ensure_tuple

__all__ = [
    "LABEL_ENCODINGS",
    "LabelRemap",
    "LabelRemapd",
    "LabelRemapD",
    "LabelRemapDict",
    "LabelEncode",
    "LabelEncoded",
    "LabelEncodeD",
    "LabelEncodeDict",
]

#: ``"onehot"``: one channel per class, in {0, 1}; ``"index"``: one channel holding the class index (for
#: generators with a learned ``label_embedding``).
LABEL_ENCODINGS = ("onehot", "index")


def _source_name(img: Any) -> str:
    meta = getattr(img, "meta", None) or {}
    name = meta.get("filename_or_obj")
    return f"{name}: " if name else ""


def _as_labels(img: Any) -> torch.Tensor:
    """``img`` as an int64 tensor, refusing non-integer values (an interpolated label map)."""
    name = _source_name(img)
    t = convert_to_tensor(img, track_meta=False)
    if t.is_floating_point():
        rounded = t.round()
        if not torch.equal(rounded, t):
            bad = t[rounded != t].flatten()[:3].tolist()
            raise ValueError(
                f"{name}label map holds non-integer values (e.g. {bad}): it was interpolated; resample label maps "
                "with nearest-neighbour interpolation."
            )
        t = rounded
    return t.long()


class LabelRemap(Transform):
    """Map the integer values of a label map to new values, e.g. to group many structures into a few classes.

    Args:
        mapping: ``{old value: new value}``; keys may be ints or strings of ints (as JSON writes them).
        default: new value of every value not in ``mapping``; None = such values are an error (naming them),
            so a label map from another labelling scheme is not silently lumped into one class.
    """

    def __init__(self, mapping: Mapping[Any, int], default: int | None = None) -> None:
        if not mapping:
            raise ValueError("mapping is empty.")
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        if any(v < 0 for v in self.mapping.values()) or (default is not None and default < 0):
            raise ValueError("new label values must be non-negative.")
        if min(self.mapping) < 0:
            raise ValueError("label values to map must be non-negative.")
        self.default = default
        size = max(self.mapping) + 1
        # lookup table; -1 marks values without a mapping
        self._table = torch.full((size,), -1 if default is None else int(default), dtype=torch.long)
        for k, v in self.mapping.items():
            self._table[k] = v

    def __call__(self, img: Any) -> torch.Tensor:
        name = _source_name(img)
        labels = _as_labels(img)
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError(f"{name}label map holds negative values (min {int(labels.min())}).")
        table = self._table.to(labels.device)
        inside = labels < table.numel()
        out = torch.full_like(labels, -1 if self.default is None else self.default)
        out[inside] = table[labels[inside]]
        if self.default is None and bool((out < 0).any()):
            missing = sorted(labels[out < 0].unique().tolist())
            raise ValueError(
                f"{name}label values {missing[:10]} have no mapping (set a default to map them all to one class)."
            )
        return out


class LabelRemapd(MapTransform):
    """Dictionary version of :class:`LabelRemap`."""

    def __init__(
        self,
        keys: KeysCollection,
        mapping: Mapping[Any, int],
        default: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.remap = LabelRemap(mapping, default)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.remap(d[key])
        return d


class LabelEncode(Transform):
    """Encode a channel-first integer label map ``(1, *spatial)`` with values in ``[0, num_classes)`` as the
    condition of a generator, float32.

    ``"onehot"`` gives ``(num_classes, *spatial)`` in {0, 1} (each voxel's channels sum to one); ``"index"`` gives
    ``(1, *spatial)`` holding the class index, for generators that learn an embedding of the classes
    (``label_embedding``; one channel whatever the number of classes, which keeps host memory small for many
    labels). Values outside the range are an error that names them; non-integer values too (an interpolated map).

    Args:
        num_classes: number of classes.
        encoding: ``"onehot"`` or ``"index"``.
    """

    def __init__(self, num_classes: int, encoding: str = "onehot") -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        if encoding not in LABEL_ENCODINGS:
            raise ValueError(f"encoding must be one of {LABEL_ENCODINGS}, got {encoding!r}.")
        self.num_classes = int(num_classes)
        self.encoding = encoding

    def __call__(self, img: Any) -> torch.Tensor:
        name = _source_name(img)
        labels = _as_labels(img)
        if labels.ndim < 2 or labels.shape[0] != 1:
            raise ValueError(
                f"{name}expected a channel-first label map (1, *spatial), got shape {tuple(labels.shape)}."
            )
        if labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_classes:
                bad = sorted(set(labels[(labels < 0) | (labels >= self.num_classes)].unique().tolist()))
                raise ValueError(
                    f"{name}label values {bad[:10]} are outside 0..{self.num_classes - 1} (num_classes "
                    f"{self.num_classes}); remap them (label_mapping) or raise num_classes."
                )
        if self.encoding == "index":
            return labels.to(torch.float32)
        return F.one_hot(labels[0], self.num_classes).movedim(-1, 0).to(torch.float32)


class LabelEncoded(MapTransform):
    """Dictionary version of :class:`LabelEncode`, with optional remapping first.

    For each of ``keys`` (integer label maps, channel-first), remaps the values (``mapping``, see
    :class:`LabelRemap`), stores the remapped map back under the key as ``uint8``/``int16`` (what a generated
    dataset writes next to its image) and its encoding under the matching ``condition_keys`` entry.

    Args:
        keys: keys of the label maps.
        condition_keys: where to write the encoded condition, one per key.
        num_classes: number of classes after remapping.
        encoding: ``"onehot"`` or ``"index"``.
        mapping: ``{old value: new value}`` or None (no remapping).
        default: new value of values missing from ``mapping`` (None = an error).
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        condition_keys: KeysCollection,
        num_classes: int,
        encoding: str = "onehot",
        mapping: Mapping[Any, int] | None = None,
        default: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.condition_keys = ensure_tuple(condition_keys)
        if len(self.condition_keys) != len(self.keys):
            raise ValueError(
                f"condition_keys needs one key per key: {len(self.keys)} keys, {len(self.condition_keys)} given."
            )
        self.remap = None if mapping is None else LabelRemap(mapping, default)
        self.encode = LabelEncode(num_classes, encoding)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, cond_key in self.key_iterator(d, self.condition_keys):
            labels = d[key]
            name = _source_name(labels)
            labels = _as_labels(labels) if self.remap is None else self.remap(labels)
            try:
                d[cond_key] = self.encode(labels)
            except ValueError as e:
                raise ValueError(f"{name}{e}") from e
            dtype = torch.uint8 if self.encode.num_classes <= np.iinfo(np.uint8).max + 1 else torch.int16
            d[key] = labels.to(dtype)
        return d


LabelRemapD = LabelRemapDict = LabelRemapd
LabelEncodeD = LabelEncodeDict = LabelEncoded
