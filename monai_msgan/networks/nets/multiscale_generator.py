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
"""The whole multi-scale generator: one base generator and one patch generator per finer scale."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from monai_msgan.utils.checkpoints import generator_path, load_weights

__all__ = ["MultiScaleGenerator"]


class MultiScaleGenerator(nn.Module):
    """Holds the generators of every scale: scale 0 is the base (whole image, low resolution), scale ``s > 0``
    refines patches at ``2**s`` times the base resolution.

    Args:
        base_generator: the base network (e.g. :class:`~monai_msgan.networks.BaseGenerator`).
        patch_generators: either a sequence of networks, one per patch scale, or a callable that builds one
            network per call (a bundle's ``"_mode_": "callable"`` definition).
        num_scales: number of scales including the base; needed when ``patch_generators`` is a callable.
    """

    def __init__(
        self,
        base_generator: nn.Module,
        patch_generators: Sequence[nn.Module] | Callable[[], nn.Module],
        num_scales: int | None = None,
    ) -> None:
        super().__init__()
        if callable(patch_generators) and not isinstance(patch_generators, nn.Module):
            if num_scales is None or num_scales < 1:
                raise ValueError("num_scales (>= 1) is required when patch_generators is a factory.")
            patch_generators = [patch_generators() for _ in range(num_scales - 1)]
        patch_generators = list(patch_generators)
        if num_scales is not None and len(patch_generators) != num_scales - 1:
            raise ValueError(
                f"num_scales={num_scales} needs {num_scales - 1} patch generators, got {len(patch_generators)}."
            )
        self.base = base_generator
        self.patches = nn.ModuleList(patch_generators)
        self.spatial_dims = getattr(base_generator, "spatial_dims", None)
        for g in self.patches:
            if getattr(g, "spatial_dims", self.spatial_dims) != self.spatial_dims:
                raise ValueError("all scales must have the same spatial_dims.")

    @property
    def num_scales(self) -> int:
        """Number of scales, the base included."""
        return 1 + len(self.patches)

    def scale(self, s: int) -> nn.Module:
        """The generator of scale ``s`` (0 = base)."""
        if not 0 <= s < self.num_scales:
            raise IndexError(f"scale {s} does not exist: this model has scales 0..{self.num_scales - 1}.")
        return self.base if s == 0 else self.patches[s - 1]

    def load_checkpoints(
        self,
        ckpt_dir: str | os.PathLike,
        map_location: str | torch.device = "cpu",
        scales: Sequence[int] | int | None = None,
    ) -> None:
        """Load the trained weights of ``scales`` (None = every scale; an int ``k`` = scales ``0..k-1``) from
        ``ckpt_dir/scale_<s>/generator.pt``.

        Raises:
            FileNotFoundError: naming the scales that have not finished training.
            ValueError: when a file does not match the network defined by the configuration.
        """
        if scales is None:
            scales = range(self.num_scales)
        elif isinstance(scales, int):
            scales = range(scales)
        scales = [int(s) for s in scales]
        for s in scales:
            self.scale(s)  # IndexError for a scale that does not exist
        missing = [s for s in scales if not generator_path(ckpt_dir, s).is_file()]
        if missing:
            raise FileNotFoundError(
                f"no trained generator for scale(s) {missing} in {ckpt_dir} (expected "
                f"{generator_path(ckpt_dir, missing[0])}); train them first, e.g. with --train_scale {missing[0]}."
            )
        for s in scales:
            path = generator_path(ckpt_dir, s)
            try:
                self.scale(s).load_state_dict(load_weights(path, map_location))
            except RuntimeError as e:
                raise ValueError(
                    f"{path} does not match the generator of scale {s} in this configuration (was it trained with "
                    f"other network settings, e.g. without the same --config_file layers?): {e}"
                ) from e
