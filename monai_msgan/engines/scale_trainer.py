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
"""Ignite/MONAI trainer of one scale: LSGAN + L1, with the generator conditioned on the batch, and the
regularisers a GAN on few images needs (EMA, discriminator augmentation, R1, a diversity term)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import Trainer
from monai.engines.workflow import Workflow
from monai.losses import PatchAdversarialLoss
from torch import nn
from torch.optim import Optimizer

from monai_msgan.engines.coarse_degradation import degrade_coarse
from monai_msgan.engines.ema import GeneratorEMA
from monai_msgan.losses.gan_regularizers import (
    DIVERSITY_SPACES,
    anchored_coverage,
    diversity_shortfall,
    histogram_distance,
    mode_coverage,
    nearest_samples,
    r1_penalty,
)
from monai_msgan.utils.checkpoints import NonFiniteError
from monai_msgan.utils.distributed import unwrap
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.memory_format import channels_last_format, module_to_channels_last, to_channels_last

__all__ = ["ScaleGanTrainer", "resolve_amp_dtype"]

_AMP_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_amp_dtype(amp_dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The autocast dtype: given, or bfloat16 on CPU and float16 on CUDA."""
    if amp_dtype is None:
        return torch.bfloat16 if device.type == "cpu" else torch.float16
    if isinstance(amp_dtype, torch.dtype):
        return amp_dtype
    if amp_dtype not in _AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of {sorted(_AMP_DTYPES)}, got {amp_dtype!r}.")
    return _AMP_DTYPES[amp_dtype]


def _logits(d_out: Any) -> list[torch.Tensor]:
    """Final outputs of a discriminator: MONAI's ``PatchDiscriminator`` returns its intermediate features with the
    logits last; ``MultiScalePatchDiscriminator`` returns ``(logits per discriminator, features)``."""
    if isinstance(d_out, tuple):
        return list(d_out[0])
    if isinstance(d_out, list):
        return [d_out[-1]]
    return [d_out]


class ScaleGanTrainer(Trainer):
    """Trains the generator and discriminator of one scale (MONAI's ``GanTrainer`` cannot condition G on the batch).

    Each iteration reads ``image_key`` (the real image or patch of this scale), ``coarse_key`` (the real image one
    scale down, upsampled; absent for the base scale) and ``condition_key`` (optional) from the batch, draws fresh
    noise, and makes ``d_steps`` discriminator steps, then ``g_steps`` generator steps:

    - D: least-squares GAN loss on ``[image, coarse, condition]`` (real) vs ``[fake, coarse, condition]``, both
      passed through ``augment`` when given (differentiable augmentation of real and fake alike, whose probability
      may adapt to D's overfitting), plus, every ``r1_interval`` iterations, ``r1_gamma / 2 * r1_interval`` times the
      R1 penalty on the real inputs (lazy regularisation).
    - G: ``adversarial_weight`` × LSGAN loss + ``l1_weight`` × L1(fake, real) + ``diversity_weight`` × the
      diversity shortfall (:func:`~monai_msgan.losses.diversity_shortfall`: how much less two samples of different
      noise differ than real images do) + ``coverage_weight`` × the mode coverage
      (:func:`~monai_msgan.losses.mode_coverage`: how far each real image of the batch is from its nearest sample,
      among the step's samples or, with ``coverage_candidates`` > 1, among that many candidates per real image;
      with ``coverage_anchors`` N > 0, the distance of each real image to the sample made from its own fixed noise,
      :func:`~monai_msgan.losses.anchored_coverage`) + ``histogram_weight`` × the histogram distance
      (:func:`~monai_msgan.losses.histogram_distance`: how far each sample's intensity distribution is from the
      nearest real image's).
      With ``coarse_noise`` > 0 the generator (not the discriminator, and not the L1 target) sees the coarse input
      degraded by smooth random deviations (:func:`~monai_msgan.engines.degrade_coarse`), so a
      patch scale learns to correct the errors of a generated coarser scale rather than copy them.
      The L1 term applies where there is something to be faithful to (a coarse input or a condition); an
      unconditional base learns from D alone, and only an unconditional base gets the diversity and coverage terms
      (with a coarse input or condition, the diversity comes from them). ``adversarial_weight`` 0
      trains G with L1 alone (a learned super-resolution network) and skips D.
    - With ``ema_half_life`` set, :attr:`generator_ema` (a :class:`~monai_msgan.engines.GeneratorEMA`) averages
      G's weights after every generator step; it is what should be exported for inference.

    ``engine.state.output`` holds the float losses (``loss_d``, ``loss_d_r1``, ``loss_g``, ``loss_g_adv``,
    ``loss_g_l1``, ``loss_g_div``, ``loss_g_cov``), the augmentation probability ``augment_p`` and the detached
    ``real``, ``fake`` and ``coarse`` tensors for previews.

    A loss or gradient that is NaN or infinite stops training before the optimiser step with
    :class:`~monai_msgan.utils.NonFiniteError` naming it and the iteration (with float16 gradient scaling, steps
    with overflowing gradients are skipped by the scaler as usual, and only a non-finite loss stops the run).

    Args:
        device: where to train.
        num_iterations: iterations to train (one epoch of that length; resumes mid-way from a checkpoint).
        train_data_loader: yields dict batches.
        generator: takes ``(coarse, condition, noise)``; its ``noise_channels`` attribute sets the noise drawn
            (standard normal, or its ``sample_noise(batch_size, spatial_size, device, memory_format)`` when it has
            one, as :class:`~monai_msgan.networks.BaseGenerator` does).
        discriminator: :class:`~monai_msgan.networks.PatchDiscriminator`, MONAI's
            ``PatchDiscriminator``/``MultiScalePatchDiscriminator`` or any net returning logits.
        g_optimizer: optimiser of the generator's parameters.
        d_optimizer: optimiser of the discriminator's parameters.
        image_key: batch key of the real image.
        coarse_key: batch key of the upsampled coarser scale.
        condition_key: batch key of the condition, or None.
        adversarial_weight: weight of G's adversarial loss (0 = L1 only, no discriminator training).
        l1_weight: weight of G's L1 loss.
        d_steps: discriminator steps per iteration.
        g_steps: generator steps per iteration (``d_steps``/``g_steps`` set the alternation of G and D updates).
        amp: autocast the forward passes (bfloat16 on CPU; float16 with a grad scaler, or bfloat16, on CUDA).
        amp_dtype: ``"bfloat16"`` or ``"float16"``; None picks by device.
        handlers: Ignite handlers to attach (checkpoints, stats, TensorBoard, ...).
        non_blocking: non-blocking host-to-device copies.
        augment: module applied to every discriminator input, real and fake (e.g.
            :class:`~monai_msgan.networks.blocks.DiscriminatorAugment`); its ``update(real_logits)`` is called
            after each discriminator step when it has one. None = no augmentation.
        r1_gamma: weight of the R1 gradient penalty (0 = off).
        r1_interval: iterations between R1 penalties (lazy regularisation; the penalty is scaled to match).
        diversity_weight: weight of the diversity shortfall of an unconditional base (0 = off).
        diversity_space: where the diversity shortfall measures differences, ``"pixels"``, ``"layout"`` (pooled
            and standardised images: brightness, contrast and texture do not count) or ``"body"`` (pooled soft masks
            of what is brighter than the real batch's Otsu threshold: only outlines count); see
            :func:`~monai_msgan.losses.diversity_shortfall`.
        diversity_pool: in the ``"layout"`` and ``"body"`` spaces, the images are average-pooled by this many pixels a
            side before they are compared: larger pools count only differences in the coarse arrangement (where the
            body lies, its size and outline), so the generator cannot make up its shortfall with small-scale lumps.
        coverage_weight: weight of the mode coverage term of an unconditional base (0 = off).
        coverage_candidates: samples drawn per real image to find its nearest for the coverage term. 1: the
            generator step's own batch of samples (one per real image). More: IMLE's selection, that many
            candidates per real image drawn without gradients, each real image's nearest regenerated from its noise
            and pulled towards it (:func:`~monai_msgan.losses.nearest_samples`); one more generator forward and
            backward per step, and the candidates' forward passes.
        coverage_anchors: N > 0 gives each of N training images its own fixed noise (an anchor, drawn once from
            a generator seeded with ``anchor_seed``) and makes the coverage term pull the sample of each real
            image's anchor towards it, instead of its nearest sample; the batch must hold each image's index
            (0..N-1) under ``anchor_key``. One more generator forward and backward per step. 0 = off. Excludes
            ``coverage_candidates`` > 1.
        coverage_pool: the coverage term compares images average-pooled by this many pixels a side (the layout,
            not the texture): larger pools hold only the coarse arrangement (a body's outline and mass) and leave
            finer structure free to vary between samples; see :func:`~monai_msgan.losses.mode_coverage`.
        histogram_weight: weight of the histogram distance of an unconditional base (0 = off): each sample of the
            generator step is pulled towards the intensity distribution of the nearest real image of the batch
            (:func:`~monai_msgan.losses.histogram_distance`), whatever its layout, so a sample in grey haze is pulled
            towards real air even when no real image has it for its nearest sample.
        coarse_noise: the largest standard deviation (model units) of the smooth deviations added to the coarse
            input the generator sees during training (0 = off; patch scales only: the base has no coarse input).
        anchor_key: batch key of the training images' indices, read when ``coverage_anchors`` > 0.
        anchor_seed: seed of the anchors' noise (the same seed gives the same anchors, so a resumed run keeps them).
        ema_half_life: half-life in iterations of the generator's weight average (None = no average).
        ema_rampup: ramp-up of that half-life (see :class:`~monai_msgan.engines.GeneratorEMA`).
        channels_last: keep the networks' weights, the batches and the noise in the channels-last memory layout
            (:func:`~monai_msgan.utils.module_to_channels_last`; the networks are converted in place): the same
            computation, faster for most 3D convolutions on CPU (``benchmarks/channels_last.py`` measures it).
            Convert networks yourself before wrapping them in ``DistributedDataParallel``, as
            :class:`~monai_msgan.engines.MultiScaleTraining` does; here they are converted again, which then
            changes nothing.
    """

    def __init__(
        self,
        device: str | torch.device,
        num_iterations: int,
        train_data_loader: Iterable,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        image_key: str = "image",
        coarse_key: str = "coarse",
        condition_key: str | None = None,
        adversarial_weight: float = 1.0,
        l1_weight: float = 10.0,
        d_steps: int = 1,
        amp: bool = False,
        amp_dtype: str | torch.dtype | None = None,
        handlers: Sequence | None = None,
        non_blocking: bool = False,
        g_steps: int = 1,
        augment: nn.Module | None = None,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        diversity_weight: float = 0.0,
        coverage_weight: float = 0.0,
        ema_half_life: float | None = None,
        ema_rampup: float | None = 0.05,
        diversity_space: str = "pixels",
        channels_last: bool = False,
        coverage_candidates: int = 1,
        coverage_anchors: int = 0,
        coverage_pool: int = 4,
        diversity_pool: int = 4,
        histogram_weight: float = 0.0,
        coarse_noise: float = 0.0,
        anchor_key: str = "anchor_index",
        anchor_seed: int = 0,
    ) -> None:
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be at least 1, got {num_iterations}.")
        if d_steps < 1 or g_steps < 1:
            raise ValueError(f"d_steps and g_steps must be at least 1, got {d_steps} and {g_steps}.")
        if r1_gamma < 0 or r1_interval < 1:
            raise ValueError(f"r1_gamma must be >= 0 and r1_interval >= 1, got {r1_gamma} and {r1_interval}.")
        if min(diversity_weight, coverage_weight, histogram_weight, adversarial_weight, l1_weight) < 0:
            raise ValueError("the adversarial, L1, diversity, coverage and histogram weights must be non-negative.")
        if diversity_space not in DIVERSITY_SPACES:
            raise ValueError(f"diversity_space must be one of {DIVERSITY_SPACES}, got {diversity_space!r}.")
        if isinstance(coarse_noise, bool) or not isinstance(coarse_noise, (int, float)) or not coarse_noise >= 0:
            raise ValueError(f"coarse_noise must be a non-negative number, got {coarse_noise!r}.")
        if isinstance(coverage_candidates, bool) or not isinstance(coverage_candidates, int) or coverage_candidates < 1:
            raise ValueError(f"coverage_candidates must be a whole number of at least 1, got {coverage_candidates!r}.")
        if isinstance(coverage_anchors, bool) or not isinstance(coverage_anchors, int) or coverage_anchors < 0:
            raise ValueError(f"coverage_anchors must be a whole number of at least 0, got {coverage_anchors!r}.")
        if isinstance(coverage_pool, bool) or not isinstance(coverage_pool, int) or coverage_pool < 1:
            raise ValueError(f"coverage_pool must be a whole number of at least 1, got {coverage_pool!r}.")
        if isinstance(diversity_pool, bool) or not isinstance(diversity_pool, int) or diversity_pool < 1:
            raise ValueError(f"diversity_pool must be a whole number of at least 1, got {diversity_pool!r}.")
        if coverage_anchors and coverage_candidates > 1:
            raise ValueError(
                "coverage_anchors and coverage_candidates > 1 are two ways of choosing the coverage term's samples: "
                "set one of them."
            )
        device = torch.device(device)
        amp = ensure_bool(amp, "amp")
        super().__init__(
            device=device,
            max_epochs=1,
            data_loader=train_data_loader,
            epoch_length=num_iterations,
            non_blocking=non_blocking,
            handlers=handlers,
            amp=False,  # MONAI's engine AMP is CUDA-only; this trainer autocasts itself on any device
            decollate=False,
        )
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.image_key = image_key
        self.coarse_key = coarse_key
        self.condition_key = condition_key
        self.adversarial_weight = adversarial_weight
        self.l1_weight = l1_weight
        self.d_steps = d_steps
        self.g_steps = g_steps
        self.augment = augment
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)
        self.diversity_weight = float(diversity_weight)
        self.diversity_space = diversity_space
        self.coverage_weight = float(coverage_weight)
        self.coverage_candidates = int(coverage_candidates)
        self.coverage_anchors = int(coverage_anchors)
        self.coverage_pool = int(coverage_pool)
        self.diversity_pool = int(diversity_pool)
        self.histogram_weight = float(histogram_weight)
        self.coarse_noise = float(coarse_noise)
        self.anchor_key = anchor_key
        self.anchor_seed = int(anchor_seed)
        # (coverage_anchors, noise channels, *spatial): drawn when first needed
        self._anchors: torch.Tensor | None = None
        self.channels_last = ensure_bool(channels_last, "channels_last")
        if self.channels_last:  # before the average copies the generator, so that the copy has the layout too
            module_to_channels_last(unwrap(generator))
            module_to_channels_last(unwrap(discriminator))
        # generator/discriminator may come wrapped in DistributedDataParallel (engines.distributed): the average,
        # attributes and the generator step's discriminator use the plain networks
        ema = None if ema_half_life is None else GeneratorEMA(unwrap(generator), ema_half_life, ema_rampup)
        self.generator_ema = ema
        self.use_amp = amp
        self.amp_dtype = resolve_amp_dtype(amp_dtype, device)
        self.adv_loss = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
        self.l1_loss = nn.L1Loss()
        use_scaler = amp and self.amp_dtype == torch.float16 and device.type == "cuda"
        self.g_scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        self.d_scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    def run(self) -> None:  # type: ignore[override]
        """Train until ``num_iterations`` (continuing from the engine state a checkpoint handler restored)."""
        Workflow.run(self)  # skips Trainer.run, which would make a CUDA-only grad scaler

    def _autocast(self):
        return torch.autocast(self.state.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def _get(self, batch: dict, key: str | None) -> torch.Tensor | None:
        if key is None or key not in batch:
            return None
        tensor = torch.as_tensor(batch[key]).to(self.state.device, non_blocking=self.non_blocking)
        return to_channels_last(tensor) if self.channels_last else tensor

    def _adv(self, d_out: Any, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        losses = [
            self.adv_loss(x.float(), target_is_real=target_is_real, for_discriminator=for_discriminator)
            for x in _logits(d_out)
        ]
        return torch.stack(losses).mean()

    def _step(self, loss: torch.Tensor, optimizer: Optimizer, scaler: torch.amp.GradScaler, name: str) -> None:
        """Backward and step, refusing non-finite losses and (without a grad scaler) gradients."""
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteError(f"{name} is {loss.item()} at iteration {self.state.iteration}.")
        scaler.scale(loss).backward()
        if not scaler.is_enabled():
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.stack([g.detach().abs().amax() for g in grads])).all()):
                raise NonFiniteError(f"the gradients of {name} are not finite at iteration {self.state.iteration}.")
        scaler.step(optimizer)
        scaler.update()

    def _anchor_noise(
        self,
        batchdata: dict[str, Any],
        real: torch.Tensor,
        sample_noise: Callable | None,
        noise_channels: int,
        memory_format: torch.memory_format,
    ) -> torch.Tensor:
        """The fixed noise of each real image of the batch (its anchor), by the image's index in the training set.

        The anchors of all ``coverage_anchors`` images are drawn once, on the CPU from a generator seeded with
        ``anchor_seed`` (the global random state is left as it was), so that every run and every resume with the
        same seed has the same anchors."""
        if self.anchor_key not in batchdata:
            raise ValueError(
                f"coverage_anchors needs each training image's index under '{self.anchor_key}' in the batch "
                "(MultiScaleTraining adds it to the base's batches)."
            )
        index = torch.as_tensor(batchdata[self.anchor_key]).long().flatten().cpu()
        if index.numel() != real.shape[0]:
            raise ValueError(
                f"the batch holds {real.shape[0]} images but {index.numel()} indices under '{self.anchor_key}'."
            )
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.coverage_anchors):
            raise ValueError(
                f"an image index in '{self.anchor_key}' is outside 0..{self.coverage_anchors - 1} (coverage_anchors "
                f"{self.coverage_anchors}): got {index.tolist()}."
            )
        if self._anchors is None or self._anchors.shape[2:] != real.shape[2:]:
            cpu = torch.device("cpu")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.anchor_seed)
                if sample_noise is not None:
                    anchors = sample_noise(self.coverage_anchors, real.shape[2:], cpu)
                else:
                    anchors = torch.randn((self.coverage_anchors, noise_channels, *real.shape[2:]))
            self._anchors = anchors
        return self._anchors[index].to(real.device).contiguous(memory_format=memory_format)

    def _iteration(self, engine: ScaleGanTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        if batchdata is None or self.image_key not in batchdata:
            raise ValueError(f"the batch must hold the real image under '{self.image_key}'.")
        real = self._get(batchdata, self.image_key)
        coarse = self._get(batchdata, self.coarse_key)
        condition = self._get(batchdata, self.condition_key)
        if self.condition_key is not None and condition is None:
            raise ValueError(f"condition_key '{self.condition_key}' is missing from the batch.")
        context = [t for t in (coarse, condition) if t is not None]
        noise_channels = int(getattr(unwrap(self.generator), "noise_channels", 0))
        iteration = engine.state.iteration

        def d_input(img: torch.Tensor) -> torch.Tensor:
            return torch.cat([img, *context], dim=1) if context else img

        def d_out(img: torch.Tensor, net: nn.Module = self.discriminator) -> Any:
            x = d_input(img)
            return net(x if self.augment is None else self.augment(x))

        # distributed hook: D's frozen parameters get no gradient in the G step, which DDP would wait for
        d_frozen = unwrap(self.discriminator)

        sample_noise = getattr(unwrap(self.generator), "sample_noise", None)
        noise_format = (channels_last_format(real.ndim) if self.channels_last else None) or torch.contiguous_format

        def draw_noise() -> torch.Tensor | None:
            if noise_channels == 0:
                return None
            if sample_noise is not None:  # drawn only as finely as the network reads it (BaseGenerator)
                return sample_noise(real.shape[0], real.shape[2:], real.device, noise_format)
            noise = torch.randn((real.shape[0], noise_channels, *real.shape[2:]), device=real.device)
            return to_channels_last(noise) if self.channels_last else noise

        # conditioning augmentation: the generator's coarse input, degraded once per iteration (D's stays clean)
        coarse_g = coarse if coarse is None else degrade_coarse(coarse, self.coarse_noise)

        def generate() -> torch.Tensor:
            return self.generator(coarse_g, condition, draw_noise())

        self.generator.train()
        self.discriminator.train()

        # The generator's output for its own step also serves the last discriminator step (detached).
        with self._autocast():
            fake = generate()

        # Discriminator step(s); none when G learns from L1 alone.
        loss_d = loss_r1 = torch.zeros((), device=real.device)
        train_d = self.adversarial_weight > 0
        self.discriminator.requires_grad_(train_d)
        for step in range(self.d_steps if train_d else 0):
            if step == self.d_steps - 1:
                fake_d = fake.detach()
            else:
                with torch.no_grad(), self._autocast():
                    fake_d = generate()
            self.d_optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                out_real = d_out(real)
                loss_d = 0.5 * (self._adv(out_real, True, True) + self._adv(d_out(fake_d), False, True))
                loss = loss_d
                if self.r1_gamma > 0 and step == 0 and (iteration - 1) % self.r1_interval == 0:
                    loss_r1 = r1_penalty(lambda x: _logits(d_out(x)), real)
                    loss = loss + 0.5 * self.r1_gamma * self.r1_interval * loss_r1
            self._step(loss, self.d_optimizer, self.d_scaler, "loss_d")
            if self.augment is not None and hasattr(self.augment, "update"):
                self.augment.update(_logits(out_real))

        # Generator step(s).
        self.discriminator.requires_grad_(False)
        unconditional = noise_channels > 0 and not context
        loss_adv = loss_div = loss_cov = loss_hist = torch.zeros((), device=real.device)
        for step in range(self.g_steps):
            if step > 0:
                with self._autocast():
                    fake = generate()
            self.g_optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                if train_d:
                    loss_adv = self._adv(d_out(fake, d_frozen), True, False)
                if unconditional and self.diversity_weight > 0:
                    loss_div = diversity_shortfall(fake, generate(), real, self.diversity_space, self.diversity_pool)
            if unconditional and self.coverage_weight > 0:
                covering = fake
                if self.coverage_candidates > 1:  # IMLE: regenerate each real image's nearest of many candidates
                    with torch.no_grad(), self._autocast():
                        noise = torch.cat([draw_noise() for _ in range(self.coverage_candidates)])
                        candidates = self.generator(coarse, condition, noise)
                    chosen = noise[nearest_samples(candidates, real, self.coverage_pool)]
                    with self._autocast():
                        covering = self.generator(
                            coarse, condition, to_channels_last(chosen) if self.channels_last else chosen
                        )
                if self.coverage_anchors:  # each real image pulls the sample of its own fixed noise
                    anchors = self._anchor_noise(batchdata, real, sample_noise, noise_channels, noise_format)
                    with self._autocast():
                        covering = self.generator(coarse, condition, anchors)
                    loss_cov = anchored_coverage(covering, real, self.coverage_pool)
                else:
                    loss_cov = mode_coverage(covering, real, self.coverage_pool)
            if unconditional and self.histogram_weight > 0:
                loss_hist = histogram_distance(fake, real)
            loss_l1 = self.l1_loss(fake.float(), real.float()) if context else torch.zeros((), device=real.device)
            loss_g = (
                self.adversarial_weight * loss_adv
                + self.l1_weight * loss_l1
                + self.diversity_weight * loss_div
                + self.coverage_weight * loss_cov
                + self.histogram_weight * loss_hist
            )
            self._step(loss_g, self.g_optimizer, self.g_scaler, "loss_g")
            if self.generator_ema is not None:
                self.generator_ema.update(unwrap(self.generator), iteration)
        self.discriminator.requires_grad_(True)

        return {
            "loss_d": loss_d.item(),
            "loss_d_r1": loss_r1.item(),
            "loss_g": loss_g.item(),
            "loss_g_adv": loss_adv.item(),
            "loss_g_l1": loss_l1.item(),
            "loss_g_div": loss_div.item(),
            "loss_g_cov": loss_cov.item(),
            "loss_g_hist": loss_hist.item(),
            "augment_p": 0.0 if self.augment is None else float(getattr(self.augment, "probability", 1.0)),
            "real": real.detach(),
            "fake": fake.detach().float(),
            "coarse": None if coarse is None else coarse.detach(),
        }
