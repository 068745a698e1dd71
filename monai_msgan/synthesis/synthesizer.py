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
"""Multi-scale synthesis: the base image in one pass, then every finer scale window by window with one assembly
engine (:mod:`monai_msgan.synthesis.assembly`) that blends overlapping windows with Gaussian weights."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import torch
from monai.utils import ensure_tuple_rep, optional_import

from monai_msgan.engines.scale_trainer import resolve_amp_dtype
from monai_msgan.networks.nets.multiscale_generator import MultiScaleGenerator
from monai_msgan.synthesis.assembly import BlendingAccumulator, assemble, coarse_support, into_tensor, window_grid
from monai_msgan.synthesis.noise import positional_noise, window_noise
from monai_msgan.synthesis.streaming import upsampled_window
from monai_msgan.transforms.pyramid import DOWNSAMPLE_MODES, ScalePyramid
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.host_memory import keep_freed_host_memory
from monai_msgan.utils.memory_format import channels_last_format, module_to_channels_last
from monai_msgan.utils.scales import ensure_size, scale_sizes

tqdm, _has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["MultiScaleSynthesizer", "BUFFERS"]

#: Where the blending accumulator and the coarser scales live.
BUFFERS = ("auto", "device", "host")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class MultiScaleSynthesizer:
    """Generates an image, or a region of one, of any valid size with a trained
    :class:`~monai_msgan.networks.MultiScaleGenerator`.

    1. The base generator makes the whole image at ``output_size / 2**(num_scales - 1)`` (in windows of
       ``base_window`` when a larger field of view is asked for).
    2. Every finer scale is made by one assembly engine (:mod:`~monai_msgan.synthesis.assembly`): its windows, in a
       fixed order, get their input from the coarser scale (upsampled ×2 window by window, never as a whole), their
       positional noise computed on ``device``, go through the scale's patch generator ``sw_batch_size`` at a time,
       and are blended with Gaussian weights into an accumulator one window deep along the last axis. Finished slabs
       go to the next scale's input, to the returned image, or to a file (:meth:`stream`).

    With ``buffer="device"`` the accumulator and the coarser scales (those within ``device_memory_budget`` bytes)
    stay on the accelerator: only the finished slabs of the last scale cross to (pinned) host memory. With
    ``buffer="host"`` they live in host memory, and every window's result is copied back (the least accelerator
    memory). Accelerator memory therefore depends on ``patch_size``, ``sw_batch_size`` and one slab of the output,
    not on the output's whole size. On one device both buffers give the same image.

    Every noise value is a counter-based hash of the seed, scale and global position
    (:func:`~monai_msgan.synthesis.noise.positional_noise`), and the window grid depends only on the image's size, so
    a region (``roi_start``, ``roi_size``) is made from exactly the windows (and coarser-scale support) that touch it
    and equals the same crop of the whole image bit for bit when ``batch_invariant=True``.

    With ``batch_invariant=True`` (the default) each window goes through the network on its own, so the same seed
    gives bit-identical images whatever the ``sw_batch_size`` or region (batched convolution kernels may round
    differently from single-window ones). ``batch_invariant=False`` runs the windows as batches, always of exactly
    ``sw_batch_size`` windows (the last one padded): the work a GPU needs to be busy, and with ``channels_last``
    about 1.7 times faster per window on a CPU; results for different ``sw_batch_size`` then agree to float
    rounding (within 1e-5, about 1e-7 measured in float32). On another device the image is the same up to that
    device's floating point rounding.

    Args:
        generator: trained generators of every scale (weights loaded).
        patch_size: window size of the patch scales (usually the training patch size).
        overlap: fraction of overlap between neighbouring windows. The default 0.125 computes each output voxel about
            1.4 times at 512³ with 64³ windows (1.3 times at 2048² with 256² windows); 0.25 about 2.6 (1.9) times.
        sw_batch_size: windows per forward pass.
        mode: blending of overlapping windows, ``"gaussian"`` (smooth) or ``"constant"``.
        sigma_scale: Gaussian sigma relative to the window size (``mode="gaussian"``).
        device: where the networks run; None = CUDA if available, else CPU.
        amp: autocast on ``device`` (bfloat16 on CPU, float16 on CUDA by default).
        amp_dtype: ``"bfloat16"``/``"float16"``.
        progress: show a progress bar per scale (needs ``tqdm``).
        batch_invariant: run the windows of a batch through the network one at a time (bit-identical results for
            any ``sw_batch_size`` and region). False = batched forward passes of ``sw_batch_size`` windows: faster on
            a GPU, and on a CPU together with ``channels_last`` (about 1.7 times at 8 windows of 64³).
        base_window: the size the base was trained at (the trained ``image_size / 2**(num_scales - 1)``). With it
            set, an ``output_size`` other than the trained size is refused (see ``extend_field_of_view``): the base
            generates a whole anatomy per window, so a larger output would repeat the anatomy in every window.
            None = no trained size known: the base runs in one pass at whatever size is asked.
        generated_scales: generate only scales ``0 .. generated_scales - 1`` with their networks and bring the last
            one to the output size by interpolation (``interp_mode``). None = every scale. ``1`` is the
            "low-resolution GAN + interpolation" baseline: only the base is trained and used.
        interp_mode: interpolation for ``generated_scales``: None = bicubic (2D) or trilinear (3D).
        truncation: factor on the base scale's noise (a narrowed latent interval, as in truncation-trick sampling):
            below 1, samples stay closer to the typical image, trading diversity for fidelity. 1 = as trained.
        condition_mode: how the condition is brought to each scale, as in training: ``"area"`` (sketches, edge
            maps) or ``"nearest"`` (label maps: one voxel of each 2×2(×2) block, never mixing labels).
        extend_field_of_view: opt in to output sizes other than the trained one, for texture-like data where repeated
            content is acceptable and for memory benchmarks: a larger base is then generated in overlapping windows
            of ``base_window``, blended like the patch scales, so its memory stays that of the training size; a
            smaller one in one pass.
        buffer: ``"device"``, ``"host"`` or ``"auto"`` (= ``"device"``): where the accumulator and coarser scales live
            (the same on a CPU device).
        device_memory_budget: bytes of accelerator memory a coarser scale may take to stay there (``buffer="device"``);
            larger ones go to host memory.
        channels_last: run the networks in channels-last memory format (faster convolutions on recent GPUs).
        cudnn_benchmark: let cuDNN time its algorithms at the first window of each shape and keep the fastest
            (faster; the choice, and so the last bits of the image, may differ between processes).
        compile: ``torch.compile`` the scale networks with this mode (``"default"``, ``"reduce-overhead"`` = CUDA
            graphs, ``"max-autotune"``, ...); None = eager. Pays off for many images of one size, since every new
            window shape compiles once.
        reuse_host_memory: make the C library keep freed host memory for the next window batch instead of
            returning it to the system (:func:`~monai_msgan.utils.host_memory.keep_freed_host_memory`; glibc only):
            about 1.3 times faster convolutions on a CPU, same results. Process-wide and permanent: the process no
            longer gives memory back after a peak, and its peak grows where allocation sizes vary, so use it for
            one-shot runs of one output size, not in long-lived servers.
    """

    def __init__(
        self,
        generator: MultiScaleGenerator,
        patch_size: Sequence[int] | int,
        overlap: float = 0.125,
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
        buffer: str = "auto",
        device_memory_budget: int = 2 * 2**30,
        channels_last: bool = False,
        cudnn_benchmark: bool = False,
        compile: str | None = None,
        reuse_host_memory: bool = False,
    ) -> None:
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.generator = generator.to(self.device).eval()
        self.spatial_dims = generator.spatial_dims
        self.patch_size = ensure_size(ensure_tuple_rep(patch_size, self.spatial_dims), self.spatial_dims, "patch_size")
        if not 0.0 <= float(overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
        self.overlap = float(overlap)
        if int(sw_batch_size) < 1:
            raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}.")
        self.sw_batch_size = int(sw_batch_size)
        self.mode = mode
        self.sigma_scale = sigma_scale
        self.amp = ensure_bool(amp, "amp")
        self.amp_dtype = resolve_amp_dtype(amp_dtype, self.device)
        self.progress = ensure_bool(progress, "progress")
        if self.progress and not _has_tqdm:
            raise ValueError("progress=True needs tqdm: pip install tqdm.")
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
        if buffer not in BUFFERS:
            raise ValueError(f"buffer must be one of {BUFFERS}, got {buffer!r}.")
        self.buffer = "device" if buffer == "auto" else buffer
        self.device_memory_budget = int(device_memory_budget)
        self.channels_last = ensure_bool(channels_last, "channels_last")
        self.memory_format = (
            channels_last_format(self.spatial_dims + 2) if self.channels_last else torch.contiguous_format
        )
        if self.channels_last:
            module_to_channels_last(self.generator)
        self.cudnn_benchmark = ensure_bool(cudnn_benchmark, "cudnn_benchmark")
        if compile is not None and compile not in _COMPILE_MODES:
            raise ValueError(f"compile must be null or one of {_COMPILE_MODES}, got {compile!r}.")
        self.compile = compile
        self.reuse_host_memory = ensure_bool(reuse_host_memory, "reuse_host_memory")
        if self.reuse_host_memory:
            keep_freed_host_memory()
        self._compiled: dict[int, Callable] = {}
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

    def roi(self, output_size: Sequence[int], roi_start=None, roi_size=None) -> tuple[slice, ...]:
        """The region ``roi_start`` .. ``roi_start + roi_size`` of an output of ``output_size`` (both None = all);
        raises a clear error if it does not lie inside."""
        output_size = tuple(output_size)
        if roi_start is None and roi_size is None:
            return tuple(slice(0, s) for s in output_size)
        if roi_start is None or roi_size is None:
            raise ValueError("give both roi_start and roi_size (or neither, for the whole image).")
        start = [int(v) for v in ensure_tuple_rep(roi_start, self.spatial_dims)]
        size = [int(v) for v in ensure_tuple_rep(roi_size, self.spatial_dims)]
        if any(a < 0 or n < 1 or a + n > s for a, n, s in zip(start, size, output_size)):
            raise ValueError(
                f"region from roi_start {start} of roi_size {size} does not lie inside the output of size "
                f"{list(output_size)} (roi_start >= 0, roi_size >= 1, roi_start + roi_size <= output_size)."
            )
        return tuple(slice(a, a + n) for a, n in zip(start, size))

    @torch.no_grad()
    def __call__(
        self,
        output_size: Sequence[int],
        seed: int = 0,
        condition: torch.Tensor | None = None,
        roi_start: Sequence[int] | int | None = None,
        roi_size: Sequence[int] | int | None = None,
    ) -> torch.Tensor:
        """Generate one image, or a region of it, in memory.

        Args:
            output_size: spatial size of the whole image; divisible by ``2**(num_scales-1)`` times the base U-Net's
                divisor, and large enough for the patch size at scale 1. May exceed the training size.
            seed: the sample's seed.
            condition: optional ``(C, *output_size)`` condition (sketch, edges, labels) at the output resolution;
                it is downsampled to every scale.
            roi_start: first pixel of the region to generate (None with ``roi_size`` None = the whole image).
            roi_size: size of the region. Only the windows of every scale that the region needs are computed; the
                result equals the same crop of the whole image (bit for bit with ``batch_invariant=True``). With
                ``generated_scales`` below ``num_scales`` the whole image is made and cut.

        Returns:
            ``(out_channels, *roi_size)`` float32 CPU tensor in the model range (about ``[-1, 1]``).
        """
        sizes, cond_levels = self._prepare(output_size, condition)
        region = self.roi(sizes[-1], roi_start, roi_size)
        if self.generated_scales < self.num_scales:  # interpolated finest scales: made whole, then cut
            image = self._synthesize(sizes, cond_levels, seed, None)
            image = self._interpolate(image.to("cpu", torch.float32), sizes[-1])
            return image[(slice(None), *region)].contiguous()
        out = self._host_tensor((self._channels(), *[r.stop - r.start for r in region]))
        self._synthesize(sizes, cond_levels, seed, region, into_tensor(out))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the slabs were copied asynchronously
        return out

    @torch.no_grad()
    def stream(
        self,
        output_size: Sequence[int],
        sink: Callable[[torch.Tensor, int], None],
        seed: int = 0,
        condition: torch.Tensor | None = None,
        roi_start: Sequence[int] | int | None = None,
        roi_size: Sequence[int] | int | None = None,
    ) -> None:
        """Generate one image (or region) and hand it to ``sink(slab, start)`` slab by slab along the last spatial
        axis, without ever holding it: the coarser scales are kept (each at most 1/4 (2D) or 1/8 (3D) of the
        output), the finest scale goes from the engine's accumulator straight to ``sink`` as float32 CPU slabs;
        ``start`` counts from the region's first plane.

        The result equals :meth:`__call__`'s: the same engine, only the finished slabs go elsewhere. With
        ``generated_scales`` below ``num_scales`` the image is made in memory and handed over as one slab.
        """
        if self.generated_scales < self.num_scales:
            sink(self(output_size, seed, condition, roi_start, roi_size), 0)
            return
        sizes, cond_levels = self._prepare(output_size, condition)
        region = self.roi(sizes[-1], roi_start, roi_size)

        def to_host(slab: torch.Tensor, start: int) -> None:
            sink(slab.to("cpu", torch.float32), start)

        self._synthesize(sizes, cond_levels, seed, region, to_host)

    # the engine ---------------------------------------------------------------------------------------------------

    def _channels(self) -> int:
        return int(getattr(self.generator.base, "out_channels", 1))

    def _host_tensor(self, shape) -> torch.Tensor:
        """A host buffer, pinned when the device is a GPU (so copies into it are asynchronous)."""
        return torch.empty(shape, pin_memory=self.device.type == "cuda")

    def _scale_tensor(self, shape) -> torch.Tensor:
        """Where a coarser scale is kept: on the device if ``buffer="device"`` and it fits the budget, else host."""
        if self.buffer == "device" and 4 * int(torch.Size(shape).numel()) <= self.device_memory_budget:
            return torch.empty(shape, device=self.device)
        return self._host_tensor(shape)

    def _base_windowed(self, size: Sequence[int]) -> bool:
        return self.base_window is not None and any(s > w for s, w in zip(size, self.base_window))

    def _support(self, sizes: list[tuple[int, ...]], region: tuple[slice, ...], last: int) -> list[tuple[slice, ...]]:
        """The region of every scale up to ``last`` that ``region`` of scale ``last`` needs, coarsest first."""
        regions = [tuple(slice(0, n) for n in size) for size in sizes[: last + 1]]
        regions[last] = region
        for s in range(last, 0, -1):
            windows = window_grid(sizes[s], self.patch_size, self.overlap, regions[s])
            regions[s - 1] = coarse_support(windows, sizes[s - 1])
        if not self._base_windowed(sizes[0]):  # the base is made whole, in one pass
            regions[0] = tuple(slice(0, n) for n in sizes[0])
        return regions

    def _backend(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.backends.cudnn.flags(
            enabled=torch.backends.cudnn.enabled,
            benchmark=self.cudnn_benchmark,
            deterministic=torch.backends.cudnn.deterministic,
            allow_tf32=torch.backends.cudnn.allow_tf32,
        )

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def _synthesize(
        self,
        sizes: list[tuple[int, ...]],
        cond_levels: list[torch.Tensor | None],
        seed: int,
        region: tuple[slice, ...] | None,
        sink: Callable[[torch.Tensor, int], None] | None = None,
    ) -> torch.Tensor | None:
        """Scales ``0 .. generated_scales - 1``: the last one's ``region`` into ``sink``, or without a sink, the whole
        last scale returned."""
        last = self.generated_scales - 1
        if region is None:
            region = tuple(slice(0, n) for n in sizes[last])
        regions = self._support(sizes, region, last)
        with self._backend():
            image = self._base(seed, sizes[0], cond_levels[0], regions[0])
            for s in range(1, last + 1):
                origin = [r.start for r in regions[s - 1]]
                image = self._scale(
                    s, image, origin, sizes[s - 1], cond_levels[s], seed, sizes[s], regions[s],
                    sink if s == last else None,
                )  # fmt: skip
        if last == 0 and sink is not None:  # a one-scale model: the base is the result
            whole = regions[0]
            into = tuple(slice(r.start - w.start, r.stop - w.start) for r, w in zip(region, whole))
            sink(image[(slice(None), *into)], 0)
            return None
        return image

    def _base(
        self,
        seed: int,
        size: tuple[int, ...],
        condition: torch.Tensor | None,
        region: tuple[slice, ...] | None = None,
    ) -> torch.Tensor:
        """The base scale: in windows of ``base_window`` over ``region`` if it is larger than that, else whole."""
        if self._base_windowed(size):
            region = tuple(slice(0, n) for n in size) if region is None else region
            return self._scale(0, None, None, None, condition, seed, size, region, None)
        base = self.generator.base
        noise = self._noise(base, seed, 0, size)
        cond = None if condition is None else condition[None].to(self.device)
        with self._autocast():
            image = base(None, cond, None if noise is None else noise[None]).float()[0]
        out = self._scale_tensor(image.shape)
        out.copy_(image)
        return out

    def _noise(self, net, seed: int, scale: int, size) -> torch.Tensor | None:
        channels = int(getattr(net, "noise_channels", 0))
        if channels == 0:
            return None
        noise = positional_noise(seed, scale, channels, size, device=self.device)
        return noise * self.truncation if scale == 0 and self.truncation != 1.0 else noise

    def _scale(
        self,
        scale: int,
        coarse: torch.Tensor | None,
        origin: Sequence[int] | None,
        coarse_size: Sequence[int] | None,
        cond: torch.Tensor | None,
        seed: int,
        size: tuple[int, ...],
        region: tuple[slice, ...],
        sink: Callable[[torch.Tensor, int], None] | None,
    ) -> torch.Tensor | None:
        """Assemble ``region`` of scale ``scale`` (the windowed base if ``scale`` is 0) from the coarser scale's
        ``coarse`` (its region starting at ``origin``): into ``sink``, or into a tensor that is returned."""
        net = self.generator.scale(scale)
        channels = int(getattr(net, "out_channels", 1))
        roi = self.patch_size if scale > 0 else self.base_window
        windows = window_grid(size, roi, self.overlap, region)
        acc_device = self.device if self.buffer == "device" else torch.device("cpu")
        accumulator = BlendingAccumulator(region, roi, channels, acc_device, self.mode, self.sigma_scale)
        out = None
        if sink is None:
            out = self._scale_tensor((channels, *[r.stop - r.start for r in region]))
            sink = into_tensor(out)

        def predict(batch: list) -> torch.Tensor:
            return self._predict(scale, net, seed, coarse, origin, coarse_size, cond, batch)

        progress = None
        if self.progress:

            def progress(batches):
                return tqdm(batches, desc=f"scale {scale}", unit="batch")

        assemble(windows, predict, accumulator, sink, self.sw_batch_size, progress)
        return out

    def _net(self, scale: int, net: torch.nn.Module) -> Callable:
        if self.compile is None:
            return net
        if scale not in self._compiled:
            self._compiled[scale] = torch.compile(net, mode=self.compile, dynamic=False)
        return self._compiled[scale]

    def _predict(self, scale, net, seed, coarse, origin, coarse_size, cond, windows) -> torch.Tensor:
        """Run the scale's network on a batch of windows: their upsampled coarse input, condition and positional
        noise, made on (or moved to) the device. Returns ``(len(windows), channels, *roi)`` float32 on the device."""
        n = len(windows)
        if not self.batch_invariant and n < self.sw_batch_size:  # always the same batch shape
            windows = list(windows) + [windows[-1]] * (self.sw_batch_size - n)
        dev, fmt = self.device, self.memory_format
        up = None
        if coarse is not None:
            up = torch.stack([upsampled_window(coarse, w, origin, coarse_size) for w in windows])
            up = up.to(dev, non_blocking=True).contiguous(memory_format=fmt)
        cond_w = None
        if cond is not None:
            cond_w = torch.stack([cond[(slice(None), *w)] for w in windows]).to(dev).contiguous(memory_format=fmt)
        noise = None
        channels = int(getattr(net, "noise_channels", 0))
        if channels:
            starts = [[sl.start for sl in w] for w in windows]
            size = [sl.stop - sl.start for sl in windows[0]]
            noise = window_noise(seed, scale, channels, starts, size, device=dev).contiguous(memory_format=fmt)
            if scale == 0 and self.truncation != 1.0:
                noise = noise * self.truncation
        fn = self._net(scale, net)

        def part(t: torch.Tensor | None, i: int) -> torch.Tensor | None:
            return None if t is None else t[i : i + 1]

        with self._autocast():
            if self.batch_invariant:
                out = torch.cat([fn(part(up, i), part(cond_w, i), part(noise, i)).float() for i in range(n)])
            else:
                out = fn(up, cond_w, noise)[:n].float()
        return out

    def _interpolate(self, image: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """``image`` resized to ``size`` by ``interp_mode`` and clipped to the model range (unchanged if it fits)."""
        if tuple(image.shape[1:]) == tuple(size):
            return image
        align = None if self.interp_mode in ("nearest", "area", "nearest-exact") else False
        out = torch.nn.functional.interpolate(image[None], size=size, mode=self.interp_mode, align_corners=align)
        return out[0].clamp_(-1.0, 1.0)

    def _prepare(self, output_size, condition) -> tuple[list[tuple[int, ...]], list[torch.Tensor | None]]:
        sizes = self.scale_sizes(output_size)
        cond_levels: list[torch.Tensor | None] = [None] * self.num_scales
        if condition is not None:
            condition = torch.as_tensor(condition, dtype=torch.float32)
            if tuple(condition.shape[1:]) != sizes[-1]:
                raise ValueError(f"condition has spatial size {list(condition.shape[1:])}, expected {list(sizes[-1])}.")
            cond_levels = list(ScalePyramid(self.num_scales, self.condition_mode)(condition))
        return sizes, cond_levels
