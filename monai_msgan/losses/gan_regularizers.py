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
"""Regularisers of GAN training: R1 gradient penalty and a diversity term against mode collapse."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "r1_penalty",
    "diversity_shortfall",
    "mode_coverage",
    "anchored_coverage",
    "nearest_samples",
    "histogram_distance",
    "otsu_threshold",
    "DIVERSITY_SPACES",
]


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018): the mean over samples of ``||grad_x D(x)||^2`` at real ``x``.

    It pushes the discriminator to be flat on the real data, which keeps GAN training near its equilibrium without
    limiting the discriminator's capacity elsewhere. Patch discriminators' outputs are summed over positions.

    Args:
        discriminator: maps a batch to logits (may augment, add context channels, ...); differentiable in ``x``.
        real: the real batch ``(B, C, *spatial)``; the gradient is taken with respect to it.

    Returns:
        the penalty (a scalar with a graph, to be weighted by ``gamma / 2`` and added to D's loss).
    """
    real = real.detach().requires_grad_(True)
    out = discriminator(real)
    outs = out if isinstance(out, (list, tuple)) else [out]
    total = sum(o.float().sum() for o in outs)
    (grad,) = torch.autograd.grad(total, real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def _pair_distance(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between each sample and the next (the batch rolled by one)."""
    return (x - x.roll(1, dims=0)).abs().flatten(1).mean(1)


DIVERSITY_SPACES = ("pixels", "layout", "body")


def _pooled(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``x`` (2D or 3D) average-pooled by ``pool`` (at most its smallest side), flattened per sample, in float32."""
    pool_fn = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
    k = max(1, min([pool, *x.shape[2:]]))
    return pool_fn(x.float(), k).flatten(1)


def _layout(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``x`` average-pooled by ``pool`` and standardised per sample (zero mean, unit standard deviation)."""
    x = _pooled(x, pool)
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True, correction=0) + 1e-6)


BODY_SOFTNESS = 0.25
"""Width of the ``"body"`` space's soft threshold, as a fraction of the real batch's intensity standard deviation."""


def otsu_threshold(x: torch.Tensor, bins: int = 64) -> torch.Tensor:
    """Otsu's threshold of all values of ``x``: the cut of its ``bins``-bin histogram that maximises the variance
    between the values below and above it (the middle of the best cuts when empty bins tie them; a scalar tensor,
    no gradient)."""
    values = x.detach().float().flatten()
    low, high = values.min(), values.max()
    if high <= low:
        return low
    counts = torch.histc(values, bins, low.item(), high.item())
    centres = low + (torch.arange(bins, device=values.device, dtype=values.dtype) + 0.5) * (high - low) / bins
    weight_below = counts.cumsum(0)[:-1]
    weight_above = counts.sum() - weight_below
    sum_below = (counts * centres).cumsum(0)[:-1]
    mean_below = sum_below / weight_below.clamp_min(1)
    mean_above = ((counts * centres).sum() - sum_below) / weight_above.clamp_min(1)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    best = (between >= between.max() * (1 - 1e-6)).nonzero().flatten().float()
    cut = (best.min() + best.max()) / 2  # empty bins make a plateau of equal cuts: take its middle
    return low + (cut + 1) * (high - low) / bins


def _body(x: torch.Tensor, threshold: torch.Tensor, width: torch.Tensor, pool: int) -> torch.Tensor:
    """A soft mask of where ``x`` is brighter than ``threshold`` (a sigmoid ``width`` wide), average-pooled."""
    return _pooled(torch.sigmoid((x.float() - threshold) / width), pool)


def diversity_shortfall(
    fake_a: torch.Tensor, fake_b: torch.Tensor, real: torch.Tensor, space: str = "pixels", pool: int = 4
) -> torch.Tensor:
    """How much less two generations from different noise differ than real images differ from each other.

    ``relu(d_real - d_fake)``, with ``d_fake`` the mean absolute difference of ``fake_a`` and ``fake_b`` (same
    conditions, different noise) and ``d_real`` that of real samples paired within the batch. It is zero once the
    generator's samples differ as much as real images do, so unlike an unbounded diversity-sensitive term it never
    rewards noise for its own sake; below that it pushes the generator's outputs apart (against mode collapse).

    ``space`` says where the differences are measured:

    - ``"pixels"``: on the images as they are. A generator can then make up its shortfall cheaply, by changing the
      brightness of whole images from seed to seed.
    - ``"layout"``: on the images average-pooled by ``pool`` and standardised per image (zero mean, unit standard
      deviation), for generators and real images alike. Differences of brightness, contrast and fine texture no
      longer count; only where things are in the image does (anatomy, pose, field of view).
    - ``"body"``: on soft masks of where each image is brighter than the real batch's Otsu threshold (a sigmoid a
      quarter of the real batch's standard deviation wide), average-pooled by ``pool``. Only the outline of what is
      dense (a CT body and its lungs' walls; a radiograph's bright structures) counts. Unlike ``"layout"``, whose
      standardisation lets texture or haze in the background count as a difference, a sample cannot make up its
      shortfall by greying its air: intensities far below the threshold all map to about 0.

    Returns:
        a scalar loss for the generator (0 with fewer than two real samples).
    """
    if space not in DIVERSITY_SPACES:
        raise ValueError(f"space must be one of {DIVERSITY_SPACES}, got {space!r}.")
    if real.shape[0] < 2:
        return fake_a.new_zeros(())
    if space == "layout":
        fake_a, fake_b, real = _layout(fake_a, pool), _layout(fake_b, pool), _layout(real, pool)
    elif space == "body":
        reference = real.detach().float()
        threshold, width = otsu_threshold(reference), BODY_SOFTNESS * reference.std() + 1e-6
        fake_a, fake_b, real = (_body(x, threshold, width, pool) for x in (fake_a, fake_b, reference))
    d_real = _pair_distance(real.float()).mean().detach()
    d_fake = (fake_a.float() - fake_b.float()).abs().flatten(1).mean(1).mean()
    return torch.relu(d_real - d_fake)


def _sorted_values(x: torch.Tensor, count: int) -> torch.Tensor:
    """Each sample's values in ascending order, ``count`` of them at evenly spaced ranks, in float32."""
    values = x.float().flatten(1).sort(dim=1).values
    if values.shape[1] == count:
        return values
    ranks = torch.linspace(0, values.shape[1] - 1, count, device=values.device).round().long()
    return values[:, ranks]


def histogram_distance(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """How far each generated image's intensity distribution is from that of the nearest real image of the batch.

    ``mean_i min_j W1(fake_i, real_j)``, with ``W1`` the one-dimensional Wasserstein distance between the two images'
    intensity distributions: the mean absolute difference of their values sorted in ascending order (compared at the
    ranks of the smaller image when the sizes differ). Where in the image the values lie does not count, so the term
    leaves the layout (and its diversity) free; it asks every sample for the intensities some real image has. It is
    the counterpart of :func:`mode_coverage`, which pulls the sample nearest to each real image and so leaves a
    sample that is nobody's nearest (a body in grey haze, say) alone; here every sample is pulled, towards the real
    image whose histogram it is nearest. The gradient moves each voxel towards the real value of the same rank: air
    that is too bright towards air. No gradient flows to ``real``.

    Returns:
        a scalar loss for the generator.
    """
    count = min(fake[0].numel(), real[0].numel())
    f, r = _sorted_values(fake, count), _sorted_values(real.detach(), count)
    return (torch.cdist(f, r, p=1) / count).min(dim=1).values.mean()


def mode_coverage(fake: torch.Tensor, real: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """How far each real image is from the nearest generated one in the batch (implicit maximum likelihood).

    ``mean_i min_j |pool(real_i) - pool(fake_j)|``, with ``pool`` an average pooling by ``pool`` (the comparison is
    about the layout of the image, not its texture). A generator that has collapsed onto one kind of image leaves the
    other kinds of real images far from every sample; this term pulls the nearest sample towards each of them, so
    every mode of the data gets generated (Li and Malik, IMLE, 2018). Unlike a term that rewards samples for
    differing from each other, it cannot be satisfied by artefacts: samples must come close to real images.

    Returns:
        a scalar loss for the generator.
    """
    return _layout_distances(fake, real, pool).min(dim=1).values.mean()


def anchored_coverage(fake: torch.Tensor, real: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """How far each generated image is from the real image it stands for: ``mean_i |pool(real_i) - pool(fake_i)|``.

    The coverage term with fixed anchors: ``fake_i`` is generated from the noise that belongs to training image
    ``real_i`` (one fixed draw per training image), so each training image has its own sample to pull, and the pulls
    cannot meet in the average of the real images, as :func:`mode_coverage`'s pulls on a collapsed generator's alike
    samples do. The distance is the one of :func:`mode_coverage` (average pooling by ``pool``: the layout, not the
    texture); no gradient flows to ``real``.

    Raises:
        ValueError: when ``fake`` and ``real`` differ in shape.
    """
    if fake.shape != real.shape:
        raise ValueError(
            f"anchored_coverage pairs fake and real images one to one, got {tuple(fake.shape)} and {tuple(real.shape)}."
        )
    f, r = _pooled(fake, pool), _pooled(real, pool).detach()
    return (f - r).abs().mean()


def _layout_distances(fake: torch.Tensor, real: torch.Tensor, pool: int) -> torch.Tensor:
    """(real, fake) mean absolute differences of the images average-pooled by ``pool`` (no gradient to ``real``)."""
    f = _pooled(fake, pool)
    r = _pooled(real, pool).detach()
    return torch.cdist(r, f, p=1) / f.shape[1]


@torch.no_grad()
def nearest_samples(candidates: torch.Tensor, real: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """For each real image, the index of the nearest candidate sample, by the distance of :func:`mode_coverage`.

    IMLE's selection step: draw many candidate samples without gradients, pick each real image's nearest, then
    regenerate only those from their noise and pull them towards their real images. With only the training batch's
    own samples to choose from (as :func:`mode_coverage` does), a collapsed generator's single kind of sample is
    pulled towards every real image at once, that is towards their average; with many candidates each real image
    finds a sample already closest to it, and the pulls go apart.

    Returns:
        a ``(len(real),)`` long tensor of indices into ``candidates``.
    """
    return _layout_distances(candidates, real, pool).argmin(dim=1)
