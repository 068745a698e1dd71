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
"""Multi-scale synthesis: the base image in one pass, then every finer scale patch by patch with MONAI's
sliding-window inferer, blending overlapping patches with Gaussian weights."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from monai.inferers import SlidingWindowInferer
from monai.utils import ensure_tuple_rep

from monai_msgan.engines.scale_trainer import resolve_amp_dtype
from monai_msgan.networks.nets.multiscale_generator import MultiScaleGenerator
from monai_msgan.synthesis.noise import positional_noise
from monai_msgan.synthesis.streaming import stream_windows, upsampled_window
from monai_msgan.transforms.pyramid import DOWNSAMPLE_MODES, ScalePyramid, upsample
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.scales import ensure_size, scale_sizes

__all__ = ["MultiScaleSynthesizer"]


class MultiScaleSynthesizer:
    """Generates an image of any valid size with a trained :class:`~monai_msgan.networks.MultiScaleGenerator`.

    1. The base generator makes the whole image at ``output_size / 2**(num_scales - 1)``.
    2. For every finer scale, the previous image is upsampled ×2 (on the CPU) and the scale's patch generator runs
       window by window through :class:`monai.inferers.SlidingWindowInferer`: windows are copied to ``device``,
       generated there, and blended into an output buffer on the CPU with Gaussian weights.

    Accelerator memory therefore depends on ``patch_size`` and ``sw_batch_size``, not on the output size; only CPU
    buffers (the upsampled input, the output and MONAI's weight map, 4 bytes per pixel each) grow with it.

    Every noise value is a function of the seed, scale and pixel position
    (:func:`~monai_msgan.synthesis.noise.positional_noise`), and with ``batch_invariant=True`` (the default) each
    window goes through the network on its own, so the same seed gives bit-identical images whatever the
    ``sw_batch_size`` (batched convolution kernels may round differently from single-window ones). On another
    device the image is the same up to that device's floating point rounding.

    Args:
        generator: trained generators of every scale (weights loaded).
        patch_size: window size of the patch scales (usually the training patch size).
        overlap: fraction of overlap between neighbouring windows.
        sw_batch_size: windows per forward pass.
        mode: blending of overlapping windows, ``"gaussian"`` (smooth) or ``"constant"``.
        sigma_scale: Gaussian sigma relative to the window size (``mode="gaussian"``).
        device: where the networks run; None = CUDA if available, else CPU.
        amp: autocast on ``device`` (bfloat16 on CPU, float16 on CUDA by default).
        amp_dtype: ``"bfloat16"``/``"float16"``.
        progress: show a progress bar per scale.
        batch_invariant: run the windows of a batch through the network one at a time (bit-identical results for
            any ``sw_batch_size``; on CPU this is also faster). False = one batched forward pass.
        base_window: the size the base was trained at (the trained ``image_size / 2**(num_scales - 1)``). With it
            set, an ``output_size`` other than the trained size is refused (see ``extend_field_of_view``): the base
            generates a whole anatomy per window, so a larger output would repeat the anatomy in every window.
            None = no trained size known: the base runs in one pass at whatever size is asked.
        extend_field_of_view: opt in to output sizes other than the trained one, for texture-like data where repeated
            content is acceptable and for memory benchmarks: a larger base is then generated in overlapping windows
            of ``base_window``, blended like the patch scales, so its memory stays that of the training size; a
            smaller one in one pass.
        generated_scales: generate only scales ``0 .. generated_scales - 1`` with their networks and bring the last
            one to the output size by interpolation (``interp_mode``). None = every scale. ``1`` is the
            "low-resolution GAN + interpolation" baseline: only the base is trained and used.
        interp_mode: interpolation for ``generated_scales``: None = bicubic (2D) or trilinear (3D).
        truncation: factor on the base scale's noise (a narrowed latent interval, as in truncation-trick sampling):
            below 1, samples stay closer to the typical image, trading diversity for fidelity. 1 = as trained.
        condition_mode: how the condition is brought to each scale, as in training: ``"area"`` (sketches, edge
            maps) or ``"nearest"`` (label maps: one voxel of each 2×2(×2) block, never mixing labels).
    """

    def __init__(
        self,
        generator: MultiScaleGenerator,
        patch_size: Sequence[int] | int,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        mode: str = "gaussian",
        sigma_scale: float = 0.125,
        device: str | torch.device | None = None,
        amp: bool = False,
        amp_dtype: str | None = None,
        progress: bool = False,
        batch_invariant: bool = True,
        base_window: Sequence[int] | int | None = None,
        generated_scales: int | None = None,
        interp_mode: str | None = None,
        truncation: float = 1.0,
        extend_field_of_view: bool = False,
        condition_mode: str = "area",
    ) -> None:
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.generator = generator.to(self.device).eval()
        self.spatial_dims = generator.spatial_dims
        self.patch_size = ensure_size(ensure_tuple_rep(patch_size, self.spatial_dims), self.spatial_dims, "patch_size")
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size
        self.mode = mode
        self.sigma_scale = sigma_scale
        self.amp = ensure_bool(amp, "amp")
        self.amp_dtype = resolve_amp_dtype(amp_dtype, self.device)
        self.progress = progress
        self.batch_invariant = ensure_bool(batch_invariant, "batch_invariant")
        self.base_window = (
            None
            if base_window is None
            else ensure_size(ensure_tuple_rep(base_window, self.spatial_dims), self.spatial_dims, "base_window")
        )
        n = generator.num_scales
        if generated_scales is not None and not 1 <= int(generated_scales) <= n:
            raise ValueError(f"generated_scales must be null (all) or in 1..{n}, got {generated_scales}.")
        self.generated_scales = n if generated_scales is None else int(generated_scales)
        self.interp_mode = interp_mode or ("bicubic" if self.spatial_dims == 2 else "trilinear")
        if condition_mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"condition_mode must be one of {DOWNSAMPLE_MODES}, got {condition_mode!r}.")
        self.condition_mode = condition_mode
        if not 0.0 <= float(truncation) <= 1.0:
            raise ValueError(f"truncation must be in [0, 1], got {truncation}.")
        self.truncation = float(truncation)
        self.extend_field_of_view = ensure_bool(extend_field_of_view, "extend_field_of_view")
        self.logger = logging.getLogger(__name__)

    @property
    def num_scales(self) -> int:
        return self.generator.num_scales

    def scale_sizes(self, output_size: Sequence[int]) -> list[tuple[int, ...]]:
        """Size of every scale for ``output_size``, coarsest first; raises a clear error if it is not valid."""
        output_size = ensure_size(output_size, self.spatial_dims, "output_size")
        base_divisor = int(getattr(self.generator.base, "size_divisor", 1))
        sizes = scale_sizes(output_size, self.num_scales, base_divisor)
        if self.num_scales > 1 and any(p > s for p, s in zip(self.patch_size, sizes[1])):
            raise ValueError(
                f"output size {list(output_size)} is too small: scale 1 is {list(sizes[1])}, smaller than the patch "
                f"size {list(self.patch_size)}."
            )
        if (
            self.base_window is not None
            and tuple(sizes[0]) != tuple(self.base_window)
            and not self.extend_field_of_view
        ):
            trained = [w * 2 ** (self.num_scales - 1) for w in self.base_window]
            raise ValueError(
                f"output size {list(output_size)} differs from the trained size {trained}: the base generates one "
                "whole anatomy at its trained size, so a larger output would tile it and a smaller one would cut it "
                "off. Generate at the trained size, train at the size you need, or set extend_field_of_view=true to "
                "accept another field of view (repeated, texture-like content; e.g. for memory benchmarks)."
            )
        return sizes

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    @torch.no_grad()
    def __call__(
        self, output_size: Sequence[int], seed: int = 0, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Generate one image in memory.

        Args:
            output_size: spatial size of the result; divisible by ``2**(num_scales-1)`` times the base U-Net's
                divisor, and large enough for the patch size at scale 1. May exceed the training size.
            seed: the sample's seed.
            condition: optional ``(C, *output_size)`` condition (sketch, edges, labels) at the output resolution;
                it is downsampled to every scale.

        Returns:
            ``(out_channels, *output_size)`` float32 CPU tensor in the model range (about ``[-1, 1]``).
        """
        sizes, cond_levels = self._prepare(output_size, condition)
        image = self._base(seed, sizes[0], cond_levels[0])
        for s in range(1, self.generated_scales):
            coarse = upsample(image)
            del image
            inputs = coarse if cond_levels[s] is None else torch.cat([coarse, cond_levels[s]], dim=0)
            del coarse
            image = self._patch_scale(s, inputs, seed, sizes[s])
            del inputs
        return self._interpolate(image, sizes[-1])

    def _interpolate(self, image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """``image`` resized to ``size`` by ``interp_mode`` and clipped to the model range (unchanged if it fits)."""
        if tuple(image.shape[1:]) == tuple(size):
            return image
        align = None if self.interp_mode in ("nearest", "area", "nearest-exact") else False
        out = torch.nn.functional.interpolate(image[None], size=size, mode=self.interp_mode, align_corners=align)
        return out[0].clamp_(-1.0, 1.0)

    @torch.no_grad()
    def stream(
        self,
        output_size: Sequence[int],
        sink: Callable[[torch.Tensor, int], None],
        seed: int = 0,
        condition: torch.Tensor | None = None,
    ) -> None:
        """Generate one image and hand it to ``sink(slab, start)`` slab by slab along the last spatial axis, without
        ever holding it: coarser scales are made in memory (each at most 1/4 (2D) or 1/8 (3D) of the output), the
        finest scale is assembled window by window (:func:`~monai_msgan.synthesis.streaming.stream_windows`).

        The result equals :meth:`__call__`'s up to floating-point summation order (about 1e-6). With
        ``generated_scales`` below ``num_scales`` the image is made in memory and handed over as one slab.
        """
        if self.generated_scales < self.num_scales:  # interpolated finest scales: made in memory, one slab
            sink(self(output_size, seed=seed, condition=condition), 0)
            return
        sizes, cond_levels = self._prepare(output_size, condition)
        last = self.num_scales - 1
        image = self._base(seed, sizes[0], cond_levels[0])
        if last == 0:
            sink(image, 0)
            return
        for s in range(1, last):  # coarser scales: assembled the same way, into memory
            image = self._assemble(s, image, cond_levels[s], seed, sizes[s])
        self._assemble(last, image, cond_levels[last], seed, sizes[last], sink)

    def _assemble(
        self,
        scale: int,
        coarse: torch.Tensor,
        cond: torch.Tensor | None,
        seed: int,
        size: tuple[int, ...],
        sink: Callable[[torch.Tensor, int], None] | None = None,
    ) -> torch.Tensor | None:
        """Scale ``scale`` from the coarser image, window by window (never upsampling the whole coarse image):
        into ``sink`` slab by slab, or, without a sink, into a tensor that is returned."""
        net = self.generator.scale(scale)
        channels = int(getattr(net, "out_channels", 1))

        def predict(windows: list) -> torch.Tensor:
            up = None if coarse is None else torch.stack([upsampled_window(coarse, w) for w in windows])
            cond_w = None if cond is None else torch.stack([cond[(slice(None), *w)] for w in windows])
            return self._run(net, scale, seed, size, up, cond_w, windows)

        out = None
        if sink is None:
            out = torch.empty((channels, *size))

            def sink(slab: torch.Tensor, start: int) -> None:
                out[..., start : start + slab.shape[-1]] = slab

        roi = self.patch_size if scale > 0 else self.base_window
        stream_windows(
            size, roi, self.overlap, predict, sink, channels,
            mode=self.mode, sigma_scale=self.sigma_scale, sw_batch_size=self.sw_batch_size,
        )  # fmt: skip
        return out

    def _prepare(self, output_size, condition) -> tuple[list[tuple[int, ...]], list[torch.Tensor | None]]:
        sizes = self.scale_sizes(output_size)
        cond_levels: list[torch.Tensor | None] = [None] * self.num_scales
        if condition is not None:
            condition = torch.as_tensor(condition, dtype=torch.float32)
            if tuple(condition.shape[1:]) != sizes[-1]:
                raise ValueError(f"condition has spatial size {list(condition.shape[1:])}, expected {list(sizes[-1])}.")
            cond_levels = list(ScalePyramid(self.num_scales, self.condition_mode)(condition))
        return sizes, cond_levels

    def _base(self, seed: int, size: tuple[int, ...], condition: torch.Tensor | None) -> torch.Tensor:
        base = self.generator.base
        if self.base_window is not None and any(s > w for s, w in zip(size, self.base_window)):
            return self._assemble(0, None, condition, seed, size)
        noise = self._noise(base, seed, 0, size)
        cond = None if condition is None else condition[None].to(self.device)
        with self._autocast():
            return base(None, cond, None if noise is None else noise[None]).float().cpu()[0]

    def _noise(self, net, seed: int, scale: int, size, region=None) -> torch.Tensor | None:
        channels = int(getattr(net, "noise_channels", 0))
        if channels == 0:
            return None
        noise = positional_noise(seed, scale, channels, size, region=region, device=self.device)
        return noise * self.truncation if scale == 0 and self.truncation != 1.0 else noise

    def _run(self, net, scale, seed, size, coarse, cond, regions) -> torch.Tensor:
        """Run ``net`` on a batch of windows (moved to the device) with their positional noise; CPU float32 out.
        ``coarse`` is None for the base."""
        n = len(regions)
        coarse = None if coarse is None else coarse.to(self.device)
        cond = None if cond is None else cond.to(self.device)
        noise = None
        if getattr(net, "noise_channels", 0):
            noise = torch.stack([self._noise(net, seed, scale, size, region=r) for r in regions])
        with self._autocast():
            if not self.batch_invariant:
                return net(coarse, cond, noise).float().cpu()
            return torch.cat(
                [
                    net(
                        None if coarse is None else coarse[i : i + 1],
                        None if cond is None else cond[i : i + 1],
                        None if noise is None else noise[i : i + 1],
                    )
                    .float()
                    .cpu()
                    for i in range(n)
                ]
            )

    def _patch_scale(self, scale: int, inputs: torch.Tensor, seed: int, size: tuple[int, ...]) -> torch.Tensor:
        net = self.generator.scale(scale)
        out_channels = int(getattr(net, "out_channels", 1))

        def predictor(window: torch.Tensor, locations: list) -> torch.Tensor:
            cond = window[:, out_channels:] if window.shape[1] > out_channels else None
            regions = [loc[2:] for loc in locations]
            return self._run(net, scale, seed, size, window[:, :out_channels], cond, regions).to(window.device)

        inferer = SlidingWindowInferer(
            roi_size=self.patch_size,
            sw_batch_size=self.sw_batch_size,
            overlap=self.overlap,
            mode=self.mode,
            sigma_scale=self.sigma_scale,
            sw_device=self.device,
            device=torch.device("cpu"),
            progress=self.progress,
            with_coord=True,
        )
        return inferer(inputs[None], predictor)[0]
