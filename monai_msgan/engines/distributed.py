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
"""Training on several processes (``torchrun``): data parallel within a scale, or scales on different ranks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from monai_msgan.engines.multiscale_training import MultiScaleTraining
from monai_msgan.networks.blocks.diff_augment import DiscriminatorAugment
from monai_msgan.utils.distributed import rank_and_world, rank_barrier

__all__ = [
    "DISTRIBUTED_MODES",
    "DistributedMultiScaleTraining",
    "RankShardSampler",
    "RankSyncedAugment",
    "assign_scales",
    "distributed_seed",
]

#: ``"ddp"``: every rank trains the same scale on its own share of the batches, gradients averaged
#: (DistributedDataParallel); ``"scales"``: each rank trains its own scales, independently.
DISTRIBUTED_MODES = ("ddp", "scales")


def _check_mode(mode: str) -> str:
    if mode not in DISTRIBUTED_MODES:
        raise ValueError(f"distributed_mode must be one of {DISTRIBUTED_MODES}, got {mode!r}.")
    return mode


def distributed_seed(seed: int, mode: str = "ddp") -> int:
    """The seed of this rank: ``seed + rank`` in ``"ddp"`` mode, so ranks draw different patches, noise and
    augmentations (their weights are made equal by DistributedDataParallel); ``seed`` in ``"scales"`` mode, so a
    scale trains as it would alone with ``train_scale``."""
    return int(seed) + (rank_and_world()[0] if _check_mode(mode) == "ddp" else 0)


def assign_scales(
    scales: Sequence[int], world_size: int, rank_scales: Sequence[int | Sequence[int]] | None = None
) -> list[list[int]]:
    """The scales each rank trains in ``"scales"`` mode.

    Args:
        scales: the scales to train (all, or the one ``train_scale`` names).
        world_size: number of ranks.
        rank_scales: one entry per rank, an int or a list of scales (e.g. ``[[0], [1, 2, 3]]`` gives the base a rank
            of its own); None = round-robin, rank ``r`` training ``scales[r::world_size]``.

    Returns:
        one list of scales per rank (empty for a rank left without work).

    Raises:
        ValueError: ``rank_scales`` has not one entry per rank, names a scale outside ``scales``, or gives a scale
            to two ranks (they would write the same checkpoint).
    """
    scales = [int(s) for s in scales]
    if rank_scales is None:
        return [scales[r::world_size] for r in range(world_size)]
    if len(rank_scales) != world_size:
        raise ValueError(f"rank_scales has {len(rank_scales)} entries; give one per rank ({world_size}).")
    out = [[int(s)] if isinstance(s, int) else [int(x) for x in s] for s in rank_scales]
    given = [s for ss in out for s in ss]
    unknown = sorted(set(given) - set(scales))
    if unknown:
        raise ValueError(f"rank_scales names scales {unknown}, which are not among the scales to train {scales}.")
    twice = sorted({s for s in given if given.count(s) > 1})
    if twice:
        raise ValueError(f"rank_scales gives scales {twice} to more than one rank; each scale needs one rank.")
    return out


class RankShardSampler(DistributedSampler):
    """MONAI/torch ``DistributedSampler`` for a training run that is one long epoch.

    Every pass over the data (the trainer restarts the loader when it runs out) reshuffles with a new epoch
    number, every rank taking its own share of the shuffled images; when a rank's share is smaller than a batch
    (few images, e.g. one demo volume), the rank draws its batch from its share with replacement, as the single
    process does from the whole dataset.

    Args:
        dataset: the training dataset.
        batch_size: images per batch on each rank.
        num_replicas: number of ranks (default: the process group's).
        rank: this rank (default: the process group's).
        seed: seed of the shuffles, equal on every rank.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        world = num_replicas if num_replicas is not None else rank_and_world()[1]
        super().__init__(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=n >= world
        )  # disjoint shares when every rank gets an image; else (n < world) images are repeated across ranks
        self.batch_size = int(batch_size)
        self.replacement = self.num_samples < self.batch_size

    def __len__(self) -> int:
        return self.batch_size if self.replacement else self.num_samples

    def __iter__(self):
        share = list(super().__iter__())
        if self.replacement:
            g = torch.Generator().manual_seed(self.seed + self.epoch * self.num_replicas + self.rank)
            share = [share[i] for i in torch.randint(len(share), (self.batch_size,), generator=g).tolist()]
        self.set_epoch(self.epoch + 1)
        return iter(share)


class RankSyncedAugment(DiscriminatorAugment):
    """:class:`~monai_msgan.networks.blocks.DiscriminatorAugment` whose adaptive probability follows the
    discriminator's outputs on every rank's reals, so it stays equal on all ranks of a data-parallel run."""

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor | Sequence[torch.Tensor]) -> None:
        if self.target is None:
            return
        outs = [real_logits] if isinstance(real_logits, torch.Tensor) else list(real_logits)
        world = rank_and_world()[1]
        gathered = []
        for out in outs:
            parts = [torch.empty_like(out) for _ in range(world)]
            dist.all_gather(parts, out.detach().contiguous())
            gathered.extend(parts)
        super().update(gathered)


class DistributedMultiScaleTraining(MultiScaleTraining):
    """:class:`~monai_msgan.engines.MultiScaleTraining` on every rank of a ``torchrun`` process group.

    ``mode="ddp"`` (data parallel within a scale): every rank trains the same scale(s) on its own share of the
    images (:class:`RankShardSampler`) with ``batch_size`` images per rank, generator and discriminator wrapped in
    ``DistributedDataParallel`` (gradients averaged, so the weights stay equal on all ranks); the adaptive
    augmentation probability is computed from every rank's reals. Rank 0 alone writes checkpoints, the exported
    generator, TensorBoard logs and console losses; every rank restores from the same checkpoint, so a killed run
    resumes as a single-process one does. Seed the ranks differently (:func:`distributed_seed`) so they draw
    different patches and noise.

    ``mode="scales"`` (scales on different ranks): each rank trains its own scales (:func:`assign_scales`,
    round-robin or ``rank_scales``) as an independent single-process run with its own checkpoints and logs; scales
    never see each other during training, so this is the same as separate ``train_scale`` runs.

    Args:
        *args: :class:`~monai_msgan.engines.MultiScaleTraining`'s arguments.
        mode: ``"ddp"`` or ``"scales"``.
        rank_scales: ``"scales"`` mode: the scales of each rank (one entry per rank); None = round-robin.
        seed: seed of the data shuffles (equal on every rank).
        **kwargs: :class:`~monai_msgan.engines.MultiScaleTraining`'s keyword arguments.

    Raises:
        RuntimeError: no process group (call :func:`~monai_msgan.utils.init_distributed` first).
        ValueError: an unknown mode, or ``rank_scales`` with ``"ddp"`` or with ``train_scale``.
    """

    def __init__(
        self,
        *args: Any,
        mode: str = "ddp",
        rank_scales: Sequence[int | Sequence[int]] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("DistributedMultiScaleTraining needs a process group: call init_distributed() first.")
        self.mode = _check_mode(mode)
        self.rank, self.world_size = rank_and_world()
        self.seed = int(seed)
        if rank_scales is not None and (mode != "scales" or kwargs.get("train_scale") is not None):
            raise ValueError("rank_scales applies to distributed_mode 'scales' with train_scale null.")
        if mode == "scales":
            self.train_scales = assign_scales(self.train_scales, self.world_size, rank_scales)[self.rank]
        else:
            self.augment_type = RankSyncedAugment
        logging.getLogger(__name__).info(
            f"rank {self.rank} of {self.world_size} ({mode}): training scales {self.train_scales} on {self.device}"
        )

    @property
    def writes_outputs(self) -> bool:
        return self.mode == "scales" or self.rank == 0

    def sampling(self, dataset: Dataset, batch: int) -> dict[str, Any]:
        if self.mode == "scales":
            return super().sampling(dataset, batch)
        return {"sampler": RankShardSampler(dataset, batch, self.world_size, self.rank, self.seed), "drop_last": True}

    def wrap(self, network: nn.Module) -> nn.Module:
        if self.mode == "scales":
            return network
        ids = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(network, device_ids=ids, output_device=self.device if ids else None)

    def run(self) -> list:
        out = super().run()
        if self.mode == "ddp":
            rank_barrier()  # rank 0 has written every generator when run() returns on any rank
        return out
