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
"""Train the scales of a multi-scale GAN, one after another or a chosen one alone."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import CacheDataset, DataLoader
from monai.handlers import StatsHandler, TensorBoardStatsHandler
from monai.transforms import Compose
from torch import nn

from monai_msgan.engines.resume import RandomStates, ResumableSampler, trim_event_files
from monai_msgan.engines.scale_trainer import ScaleGanTrainer
from monai_msgan.handlers import GanImagePreview, TrainingCheckpoint
from monai_msgan.losses.gan_regularizers import DIVERSITY_SPACES
from monai_msgan.networks.blocks.diff_augment import DiscriminatorAugment, check_intensity_strength
from monai_msgan.networks.nets.multiscale_generator import MultiScaleGenerator
from monai_msgan.transforms import RandScalePatchd, ScaleTrainingInputsd
from monai_msgan.utils.atomic import signals_raise
from monai_msgan.utils.checkpoints import NonFiniteError, checkpoint_path, generator_path, scale_dir
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.memory_format import module_to_channels_last
from monai_msgan.utils.validation import ConfigurationError, dataset_size_violations, training_violations

__all__ = ["MultiScaleTraining"]

#: key of each training image's index in the base's batches, read by the coverage term's anchors
ANCHOR_KEY = "anchor_index"
LOSS_KEYS = (
    "loss_d",
    "loss_d_r1",
    "loss_g",
    "loss_g_adv",
    "loss_g_l1",
    "loss_g_div",
    "loss_g_cov",
    "loss_g_hist",
    "augment_p",
)


def _per_scale(value: Any, num_scales: int, name: str) -> list:
    """A value for every scale: one value for all, or a sequence with one entry per scale."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_scales:
            raise ValueError(f"{name} has {len(value)} entries; give one value or one per scale ({num_scales}).")
        return list(value)
    return [value] * num_scales


def _build(factory: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    return factory if isinstance(factory, nn.Module) else factory()


def _pack_of(factory: nn.Module | Callable[[], nn.Module]) -> int:
    """Images a discriminator (or its factory: a bundle's ``"_mode_": "callable"`` gives a ``functools.partial``)
    judges at once (:class:`~monai_msgan.networks.PatchDiscriminator`'s ``pack``); 1 when it does not say."""
    if isinstance(factory, nn.Module):
        return int(getattr(factory, "pack", 1))
    keywords = getattr(factory, "keywords", None)
    return int(keywords.get("pack", 1)) if isinstance(keywords, dict) else 1


def _losses(output: Any) -> dict[str, float]:
    return {k: output[k] for k in LOSS_KEYS if isinstance(output, dict) and k in output}


class MultiScaleTraining:
    """Trains every scale of a :class:`~monai_msgan.networks.MultiScaleGenerator` on real images.

    Scale 0 (the base) learns the whole image at the lowest resolution; scale ``s > 0`` learns to refine random
    patches of the real image at scale ``s`` from the real image one scale down, upsampled. Scales never see each
    other's outputs, so they can be trained in any order, or in parallel processes with ``train_scale`` set.

    Each scale gets its own folder ``ckpt_dir/scale_<s>/`` with a resumable ``checkpoint.pt`` (saved atomically
    every ``save_interval`` iterations) and, once done, ``generator.pt``; a killed run resumes from the last save.
    TensorBoard scalars and previews go to ``log_dir/scale_<s>/``.

    Before the first iteration, :meth:`validate` checks every size/scale/patch constraint and every training
    image's size (from its header) and reports all violations in one :class:`~monai_msgan.utils.ConfigurationError`.
    Checkpoints hold the random states and the data order (:mod:`monai_msgan.engines.resume`), so a resumed run on
    CPU repeats an uninterrupted one; TensorBoard events logged after the checkpoint by the killed run are removed,
    so steps never repeat. A non-finite loss, gradient or weight stops the run with
    :class:`~monai_msgan.utils.NonFiniteError` naming the scale and iteration; the last good checkpoint is kept and
    nothing is exported. SIGTERM stops it like Ctrl-C (temporaries removed).

    Args:
        generator: all scales' generators.
        base_discriminator: discriminator of scale 0, or a factory building it.
        patch_discriminator: factory building one discriminator per patch scale (or one module, for one scale).
        g_optimizer: factory ``params -> Optimizer`` (a bundle's ``"_mode_": "callable"`` optimiser).
        d_optimizer: factory ``params -> Optimizer``.
        train_files: MONAI datalist entries (dicts holding ``image_key`` and, if set, ``condition_key``).
        preprocessing: deterministic MONAI transform that loads an entry and returns its full-resolution,
            channel-first image (and condition) in the model range, with a size divisible by ``2**(num_scales-1)``.
        patch_size: patch size of the patch scales (the base always sees the whole image).
        ckpt_dir: checkpoint folder.
        log_dir: TensorBoard folder; None = no TensorBoard.
        device: where to train.
        train_scale: None = every scale, in order; an int = that scale only.
        num_iterations: iterations per scale (one value, or one per scale).
        batch_size: images per batch, per scale (one value, or one per scale); on patch scales each image gives
            ``patches_per_image`` patches, so a batch holds ``batch_size * patches_per_image`` patches.
        patches_per_image: patches drawn from each loaded image for patch scales.
        image_key: datalist key of the image.
        condition_key: datalist key of the condition (sketch, edges, labels), or None.
        condition_mode: ``"area"`` (continuous conditions) or ``"nearest"`` (label maps) downsampling.
        adversarial_weight: G's adversarial loss weight (one value, or one per scale; 0 = L1 only, e.g. the learned
            super-resolution baseline on patch scales).
        l1_weight: G's L1 loss weight (one value, or one per scale).
        d_steps: discriminator steps per iteration.
        g_steps: generator steps per iteration.
        amp: mixed precision (bfloat16 autocast on CPU; float16/bfloat16 on CUDA).
        amp_dtype: ``"bfloat16"`` or ``"float16"``; None picks by device.
        save_interval: iterations between checkpoints.
        snapshot_interval: keep the exported generator's weights every this many iterations beside
            ``generator.pt`` (``scale_<s>/generator_002000.pt``): quality against iterations, or an earlier model
            than the last (one value, or one per scale; 0 = none, the default).
        log_interval: iterations between loss logs.
        preview_interval: iterations between TensorBoard image previews.
        cache_rate: fraction of preprocessed images kept in memory.
        num_workers: data loader workers.
        progress: show a progress bar; None = only when the output is a terminal.
        base_patch_size: None = the base learns whole images (the method); a size = the base learns random patches
            of that size, ``patches_per_image`` per image (a patch-wise base such as the single-scale patch GAN
            baseline, :class:`~monai_msgan.networks.PatchGenerator` with ``coarse_input=False``).
        ema_half_life: half-life in iterations of the exponential moving average of G's weights (one value, or one
            per scale); None = no average. With an average, ``generator.pt`` holds the averaged weights.
        ema_rampup: ramp-up of the average's half-life (:class:`~monai_msgan.engines.GeneratorEMA`).
        augment: differentiable augmentations of every discriminator input, real and fake
            (:class:`~monai_msgan.networks.blocks.DiscriminatorAugment`: any of ``"translation"``, ``"cutout"``,
            ``"intensity"``); None or empty = none.
        augment_p: initial augmentation probability (the fixed one without ``ada_target``).
        ada_target: target of the overfitting heuristic ``E[sign(D(real) - 0.5)]`` that adapts the probability;
            None = fixed ``augment_p``.
        ada_speed: iterations for the adaptive probability to move by 1.
        ada_max_p: upper bound of the adaptive probability (strong augmentation can leak into the generator).
        augment_fill: value of voxels uncovered by translation or cutout (the model-range background).
        augment_brightness: largest brightness shift of the ``"intensity"`` augmentation (model units).
        augment_contrast: largest relative contrast change of the ``"intensity"`` augmentation (below 1).
        r1_gamma: R1 gradient penalty weight (one value, or one per scale; 0 = off).
        r1_interval: iterations between (lazy) R1 penalties.
        diversity_weight: weight of the diversity shortfall of an unconditional base (0 = off).
        diversity_space: ``"pixels"``, ``"layout"`` or ``"body"``: where that shortfall measures differences
            (:func:`~monai_msgan.losses.diversity_shortfall`).
        coverage_weight: weight of the mode coverage term of an unconditional base (0 = off).
        coverage_candidates: candidate samples per real image among which the coverage term finds each real
            image's nearest (1 = the step's own samples; more = IMLE's selection, see
            :class:`~monai_msgan.engines.ScaleGanTrainer`).
        coverage_anchors: give each training image its own fixed noise (an anchor, drawn from the training seed)
            and make the coverage term pull the base's sample of each real image's anchor towards that image, in
            place of its nearest sample: every training image keeps a sample of its own, which alike samples of a
            collapsed base cannot all be (see :func:`~monai_msgan.losses.anchored_coverage`). Needs
            ``coverage_weight`` > 0 to act, the base learning whole images (no ``base_patch_size``) and
            ``coverage_candidates`` 1.
        coverage_pool: the coverage term compares images average-pooled by this many pixels a side (4: the
            layout; larger: only the coarse arrangement, leaving finer structure free to vary between samples).
        diversity_pool: the layout and body diversity shortfalls compare images average-pooled by this many pixels a
            side (4; larger: only differences in the coarse arrangement count towards the shortfall).
        histogram_weight: weight of the histogram distance of an unconditional base (0 = off): every base sample
            is pulled towards the intensity distribution of the nearest real image of its batch
            (:func:`~monai_msgan.losses.histogram_distance`).
        coarse_noise: conditioning augmentation of the patch scales: the largest standard deviation (model units)
            of the smooth random deviations added to the coarse input their generators see in training, so that they
            learn to correct a generated coarser scale's errors (:func:`~monai_msgan.engines.degrade_coarse`; 0 = off).
        image_size: size of the preprocessed training images (the finest scale), to check the configuration
            against before training; None = the size of the first preprocessed image.
        channels_last: train in the channels-last memory layout (one value, or one per scale): the same
            computation in another order of memory, faster for most 3D convolutions on CPU and slower for some 2D
            ones (``benchmarks/channels_last.py`` measures each scale of a bundle configuration).
    """

    #: class of the discriminator augmentation (a hook for :mod:`monai_msgan.engines.distributed`)
    augment_type: type[DiscriminatorAugment] = DiscriminatorAugment

    def __init__(
        self,
        generator: MultiScaleGenerator,
        base_discriminator: nn.Module | Callable[[], nn.Module],
        patch_discriminator: nn.Module | Callable[[], nn.Module],
        g_optimizer: Callable[..., torch.optim.Optimizer],
        d_optimizer: Callable[..., torch.optim.Optimizer],
        train_files: Sequence[dict],
        preprocessing: Callable,
        patch_size: Sequence[int] | int,
        ckpt_dir: str | os.PathLike,
        log_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        train_scale: int | None = None,
        num_iterations: int | Sequence[int] = 1000,
        batch_size: int | Sequence[int] = 4,
        patches_per_image: int = 4,
        image_key: str = "image",
        condition_key: str | None = None,
        condition_mode: str = "area",
        adversarial_weight: float = 1.0,
        l1_weight: float = 10.0,
        d_steps: int = 1,
        amp: bool = False,
        amp_dtype: str | None = None,
        save_interval: int = 100,
        snapshot_interval: int | Sequence[int] = 0,
        log_interval: int = 10,
        preview_interval: int = 100,
        cache_rate: float = 1.0,
        num_workers: int = 0,
        progress: bool | None = None,
        base_patch_size: Sequence[int] | int | None = None,
        g_steps: int = 1,
        ema_half_life: float | Sequence[float | None] | None = None,
        ema_rampup: float | None = 0.05,
        augment: str | Sequence[str] | None = None,
        augment_p: float = 0.0,
        ada_target: float | None = 0.6,
        ada_speed: int = 500,
        ada_max_p: float = 0.8,
        augment_fill: float = -1.0,
        augment_brightness: float = 0.25,
        augment_contrast: float = 0.5,
        r1_gamma: float | Sequence[float] = 0.0,
        r1_interval: int = 16,
        diversity_weight: float = 0.0,
        diversity_space: str = "pixels",
        coverage_weight: float = 0.0,
        coverage_candidates: int = 1,
        coverage_anchors: bool = False,
        coverage_pool: int = 4,
        diversity_pool: int = 4,
        histogram_weight: float = 0.0,
        coarse_noise: float = 0.0,
        image_size: Sequence[int] | None = None,
        channels_last: bool | Sequence[bool] = False,
    ) -> None:
        self.generator = generator
        self.image_size = image_size
        n = generator.num_scales
        if train_scale is not None and not 0 <= int(train_scale) < n:
            raise ValueError(f"train_scale must be null (all scales) or in 0..{n - 1}, got {train_scale}.")
        if len(train_files) == 0:
            raise ValueError("train_files is empty: the datalist has no training images.")
        self.base_discriminator = base_discriminator
        self.patch_discriminator = patch_discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.train_files = list(train_files)
        self.preprocessing = preprocessing
        self.patch_size = patch_size
        self.base_patch_size = base_patch_size
        self.ckpt_dir = Path(ckpt_dir)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.device = torch.device(device)
        self.train_scales = list(range(n)) if train_scale is None else [int(train_scale)]
        self.num_iterations = _per_scale(num_iterations, n, "num_iterations")
        self.batch_size = _per_scale(batch_size, n, "batch_size")
        self.patches_per_image = patches_per_image
        self.image_key = image_key
        self.condition_key = condition_key
        self.condition_mode = condition_mode
        self.adversarial_weight = _per_scale(adversarial_weight, n, "adversarial_weight")
        self.l1_weight = _per_scale(l1_weight, n, "l1_weight")
        self.r1_gamma = _per_scale(r1_gamma, n, "r1_gamma")
        self.ema_half_life = _per_scale(ema_half_life, n, "ema_half_life")
        self.channels_last = [ensure_bool(v, "channels_last") for v in _per_scale(channels_last, n, "channels_last")]
        self.augment = [a for a in ([augment] if isinstance(augment, str) else (augment or [])) if a]
        self.augment_kwargs = {
            "p": augment_p,
            "target": ada_target,
            "speed": ada_speed,
            "max_p": ada_max_p,
            "fill": augment_fill,
            "brightness": float(augment_brightness),
            "contrast": float(augment_contrast),
        }
        check_intensity_strength(
            self.augment_kwargs["brightness"],
            self.augment_kwargs["contrast"],
            ("augment_brightness", "augment_contrast"),
        )
        if diversity_space not in DIVERSITY_SPACES:
            raise ValueError(f"diversity_space must be one of {DIVERSITY_SPACES}, got {diversity_space!r}.")
        self.trainer_kwargs = {
            "d_steps": d_steps,
            "g_steps": g_steps,
            "amp": ensure_bool(amp, "amp"),
            "amp_dtype": amp_dtype,
            "r1_interval": r1_interval,
            "diversity_weight": diversity_weight,
            "diversity_space": diversity_space,
            "coverage_weight": coverage_weight,
            "coverage_candidates": coverage_candidates,
            "coverage_pool": coverage_pool,
            "diversity_pool": diversity_pool,
            "histogram_weight": histogram_weight,
            "coarse_noise": coarse_noise,
            "ema_rampup": ema_rampup,
        }
        self.coverage_anchors = ensure_bool(coverage_anchors, "coverage_anchors")
        if self.coverage_anchors:  # one anchor per training image, drawn from the seed the run was started with
            self.trainer_kwargs["coverage_anchors"] = len(self.train_files)
            self.trainer_kwargs["anchor_key"] = ANCHOR_KEY
            self.trainer_kwargs["anchor_seed"] = torch.initial_seed() % 2**63
        self.save_interval = save_interval
        self.snapshot_interval = _per_scale(snapshot_interval, n, "snapshot_interval")
        self.log_interval = log_interval
        self.preview_interval = preview_interval
        self.cache_rate = cache_rate
        self.num_workers = num_workers
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.logger = logging.getLogger(__name__)

    def data_loader(self, scale: int) -> DataLoader:
        """Aligned (real, coarse, condition) samples of ``scale``; the deterministic part is cached."""
        keys = (
            [self.image_key] + ([] if scale == 0 else ["coarse"]) + ([self.condition_key] if self.condition_key else [])
        )
        steps = [
            self.preprocessing,
            ScaleTrainingInputsd(
                self.image_key,
                scale,
                self.generator.num_scales,
                condition_keys=self.condition_key,
                condition_mode=self.condition_mode,
            ),
        ]
        if scale > 0:
            steps.append(RandScalePatchd(keys, self.patch_size, num_samples=self.patches_per_image))
        elif self.base_patch_size is not None:
            steps.append(RandScalePatchd(keys, self.base_patch_size, num_samples=self.patches_per_image))
        # flatten: CacheDataset stops caching at a nested Compose (MONAI treats a Compose as randomizable)
        # copy_cache=False: the random crop returns views of the cached arrays and collation copies them; a deep
        # copy of a whole cached 512^3 volume (and its coarse input) per sample would dominate each 3D iteration
        files = self.train_files
        if scale == 0 and self.coverage_anchors:  # each image's index: the coverage term finds its anchor by it
            files = [{**item, ANCHOR_KEY: i} for i, item in enumerate(files)]
        dataset = CacheDataset(
            files,
            Compose(steps).flatten(),
            cache_rate=self.cache_rate,
            num_workers=None,
            progress=False,
            copy_cache=False,
        )
        # a batch holds batch_size images, each giving patches_per_image patches (MONAI's list_data_collate)
        # fewer images than a batch (e.g. one demo volume): draw with replacement so batches are full. The order
        # comes from its own seeded generator and can resume at any batch (engines.resume).
        batch = self.batch_size[scale]
        return DataLoader(
            dataset,
            batch_size=batch,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(torch.initial_seed() % 2**63),
            **self.sampling(dataset, batch),
        )

    def sampling(self, dataset: CacheDataset, batch: int) -> dict[str, Any]:
        """DataLoader arguments that order the samples (a hook for :mod:`monai_msgan.engines.distributed`): a
        :class:`ResumableSampler` with its own seeded generator, drawing with replacement when the dataset is
        smaller than a batch."""
        sampler = ResumableSampler(
            len(dataset), batch, replacement=len(dataset) < batch, seed=torch.initial_seed() % 2**62
        )
        return {"sampler": sampler, "drop_last": True}

    @property
    def writes_outputs(self) -> bool:
        """Whether this process writes checkpoints, logs and previews (only rank 0 of a data-parallel run)."""
        return True

    def wrap(self, network: nn.Module) -> nn.Module:
        """The network as the trainer runs it (a hook: DistributedDataParallel in a data-parallel run)."""
        return network

    def validate(self) -> None:
        """Check the configuration and the training images' sizes before any work.

        Raises:
            ConfigurationError: listing every violation (sizes, scales, patches, options, images too small).
        """
        n = self.generator.num_scales
        dims = self.generator.spatial_dims
        size = self.image_size
        if size is None:
            item = self.preprocessing(self.train_files[0])
            size = tuple(item[self.image_key].shape[1:]) if isinstance(item, dict) and self.image_key in item else None
        options = {
            "num_iterations": (self.num_iterations, 1),
            "batch_size": (self.batch_size, 1),
            "patches_per_image": (self.patches_per_image, 1),
            "save_interval": (self.save_interval, 0),
            "snapshot_interval": (self.snapshot_interval, 0),
            "log_interval": (self.log_interval, 0),
            "preview_interval": (self.preview_interval, 0),
            "num_workers": (self.num_workers, 0),
        }
        patch_divisor = max([int(getattr(self.generator.scale(s), "size_divisor", 1)) for s in range(1, n)] or [1])
        problems = training_violations(
            dims,
            n,
            size,
            self.patch_size,
            self.base_patch_size,
            base_divisor=int(getattr(self.generator.base, "size_divisor", 1)),
            patch_divisor=patch_divisor,
            options=options,
        )
        if not problems:
            problems += self._pack_violations()
        if self.coverage_anchors and 0 in self.train_scales:
            if self.base_patch_size is not None:
                problems.append(
                    "coverage_anchors needs the base to learn whole images: an anchor stands for one training image, "
                    "not for a random patch of it (base_patch_size is set)"
                )
            if int(self.trainer_kwargs["coverage_candidates"]) > 1:
                problems.append("coverage_anchors and coverage_candidates > 1 exclude each other: set one of them")
            if not all(isinstance(item, dict) for item in self.train_files):
                problems.append("coverage_anchors needs the training files as dictionaries, to add each one's index")
        if not problems and size is not None:
            base = [int(s) // 2 ** (n - 1) for s in size]
            problems += dataset_size_violations(self.train_files, self.image_key, dims, base)
        if problems:
            raise ConfigurationError(problems, "the training configuration")

    def _pack_violations(self) -> list[str]:
        """Scales whose batch the discriminator's packs (``pack`` images judged at once) do not divide."""
        problems = []
        for s in self.train_scales:
            pack = _pack_of(self.base_discriminator if s == 0 else self.patch_discriminator)
            patched = s > 0 or self.base_patch_size is not None
            items = int(self.batch_size[s]) * (int(self.patches_per_image) if patched else 1)
            if pack > 1 and items % pack:
                which = "base_disc_pack" if s == 0 else "pack"
                what = f"batch_size {self.batch_size[s]}" + (
                    f" x patches_per_image {self.patches_per_image}" if patched else ""
                )
                problems.append(
                    f"scale {s}: the discriminator judges packs of {pack} images ({which} in the bundles), which the "
                    f"batch of {items} ({what}) does not divide: set the batch to a multiple of {pack} or the pack to 1"
                )
        return problems

    def build_trainer(self, scale: int) -> tuple[ScaleGanTrainer, Any]:
        """The trainer of one scale with its handlers attached, and its TensorBoard writer (or None)."""
        g = self.generator.scale(scale).to(self.device)
        if scale == 0:
            d = _build(self.base_discriminator)
        else:
            d = _build(self.patch_discriminator)
        d = d.to(self.device)
        if self.channels_last[scale]:  # before the optimisers and any distributed wrapper see the parameters
            module_to_channels_last(g)
            module_to_channels_last(d)
        g_opt = self.g_optimizer(g.parameters())
        d_opt = self.d_optimizer(d.parameters())
        name = f"scale_{scale}"
        writes = self.writes_outputs
        loader = self.data_loader(scale)
        augment = self.build_augment(scale)
        trainer = ScaleGanTrainer(
            device=self.device,
            num_iterations=self.num_iterations[scale],
            train_data_loader=loader,
            generator=self.wrap(g),
            discriminator=self.wrap(d),
            g_optimizer=g_opt,
            d_optimizer=d_opt,
            image_key=self.image_key,
            condition_key=self.condition_key,
            adversarial_weight=self.adversarial_weight[scale],
            l1_weight=self.l1_weight[scale],
            r1_gamma=self.r1_gamma[scale],
            ema_half_life=self.ema_half_life[scale],
            augment=augment,
            channels_last=self.channels_last[scale],
            **self.trainer_kwargs,
        )
        save_dict = {
            "generator": g,
            "discriminator": d,
            "g_optimizer": g_opt,
            "d_optimizer": d_opt,
            "g_scaler": trainer.g_scaler,
            "d_scaler": trainer.d_scaler,
        }
        if trainer.generator_ema is not None:
            save_dict["generator_ema"] = trainer.generator_ema.module
        if augment is not None:
            save_dict["augment"] = augment
        save_dict["random_states"] = RandomStates(loader.dataset.transform)
        export = g if trainer.generator_ema is None else trainer.generator_ema.module
        trainer.checkpoint = TrainingCheckpoint(
            checkpoint_path(self.ckpt_dir, scale),
            save_dict,
            save_interval=self.save_interval,
            export_file=generator_path(self.ckpt_dir, scale),
            export_module=export,
            map_location=self.device,
            optional=("random_states",),
            sampler=loader.sampler if hasattr(loader.sampler, "start_at") else None,
            read_only=not writes,
            snapshot_interval=self.snapshot_interval[scale],
        )
        trainer.checkpoint.attach(trainer)
        handlers: list = []
        if writes:
            handlers.append(
                StatsHandler(
                    name=name, iteration_log=self._every(self.log_interval), epoch_log=False, output_transform=_losses
                )
            )
        writer = None
        if self.log_dir is not None and writes:
            from torch.utils.tensorboard import SummaryWriter

            # events that a killed run logged after its last checkpoint are dropped: steps never repeat
            trim_event_files(self.log_dir / name, trainer.checkpoint.saved_iteration)
            writer = SummaryWriter(log_dir=str(self.log_dir / name))
            handlers.append(
                TensorBoardStatsHandler(
                    summary_writer=writer,
                    iteration_log=self._every(self.log_interval),
                    epoch_log=False,
                    output_transform=_losses,
                )
            )
            handlers.append(GanImagePreview(writer, interval=self.preview_interval, tag=f"{name}/coarse_fake_real"))
        for h in handlers:
            h.attach(trainer)
        if self.progress and writes:
            from ignite.contrib.handlers import ProgressBar

            ProgressBar(desc=f"{name}", persist=True).attach(
                trainer, output_transform=lambda o: {"d": o["loss_d"], "g": o["loss_g"]}
            )
        return trainer, writer

    def build_augment(self, scale: int) -> DiscriminatorAugment | None:
        """The discriminator augmentation of ``scale`` (None without ``augment``): intensity changes apply to the
        image and, on patch scales, its coarse input, never to a condition."""
        if not self.augment or self.adversarial_weight[scale] == 0:
            return None
        g = self.generator.scale(scale)
        channels = int(getattr(g, "out_channels", 1))
        has_coarse = scale > 0 and getattr(g, "coarse_input", True)
        return self.augment_type(
            self.generator.spatial_dims,
            self.augment,
            intensity_channels=channels * (2 if has_coarse else 1),
            **self.augment_kwargs,
        ).to(self.device)

    @staticmethod
    def _every(n: int) -> Callable:
        return lambda engine, event: n > 0 and event % n == 0

    def run(self) -> list[Path]:
        """Check the configuration, then train the selected scales; returns the trained generator files."""
        self.validate()
        with signals_raise():
            return self._run()

    def _run(self) -> list[Path]:
        out = []
        for scale in self.train_scales:
            self.logger.info(
                f"training scale {scale} of 0..{self.generator.num_scales - 1} for {self.num_iterations[scale]} "
                f"iterations in {scale_dir(self.ckpt_dir, scale)}"
            )
            trainer, writer = self.build_trainer(scale)
            try:
                trainer.run()
            except NonFiniteError as e:
                raise NonFiniteError(
                    f"scale {scale}: training stopped: {e} {trainer.checkpoint.kept()}; nothing was exported. "
                    "Try a lower learning_rate, amp false, or resume from the checkpoint."
                ) from e
            finally:
                if writer is not None:
                    writer.close()
            self.generator.scale(scale).to("cpu", memory_format=torch.contiguous_format)
            out.append(generator_path(self.ckpt_dir, scale))
            print(f"scale {scale}: trained generator in {out[-1]}", flush=True)
        return out
