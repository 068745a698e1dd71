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
"""TensorBoard image previews of a GAN trainer: coarse input, generated and real image side by side."""

from __future__ import annotations

import torch
from ignite.engine import Engine, Events

from monai_msgan.data.io import mid_planes

__all__ = ["GanImagePreview", "preview_slice"]


def preview_slice(x: torch.Tensor) -> torch.Tensor:
    """First channel of a ``(C, *spatial)`` image as a 2D ``(rows, columns)`` tensor for display: a 2D image itself,
    the middle axial slice of a 3D one (the first plane of :func:`~monai_msgan.data.io.mid_planes`)."""
    return mid_planes(x)[0].transpose(0, 1)


class GanImagePreview:
    """Every ``interval`` iterations, write one sample of ``engine.state.output`` as a single grey image, left to
    right: the upsampled coarse input (if any), the generated image and the real image, mapped from the model range
    ``[-1, 1]`` to ``[0, 1]``. 3D images show their middle slice.

    Args:
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter``.
        interval: iterations between previews.
        tag: TensorBoard tag.
        keys: output keys to show, left to right; missing or None entries are skipped.
    """

    def __init__(
        self,
        summary_writer,
        interval: int = 100,
        tag: str = "preview",
        keys: tuple[str, ...] = ("coarse", "fake", "real"),
    ) -> None:
        self.writer = summary_writer
        self.interval = interval
        self.tag = tag
        self.keys = keys

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output or {}
        tiles = [preview_slice(out[k][0].detach().float().cpu()) for k in self.keys if out.get(k) is not None]
        if not tiles:
            return
        grid = torch.cat(tiles, dim=-1)
        grid = ((grid.clamp(-1, 1) + 1) / 2)[None]
        self.writer.add_image(self.tag, grid, engine.state.iteration, dataformats="CHW")
        self.writer.flush()
