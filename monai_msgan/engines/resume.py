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
"""What a checkpoint needs beyond weights for a resumed run to repeat an uninterrupted one: the random states and
the position in the data.

- :class:`RandomStates` saves and restores Python's, NumPy's and torch's (CPU and every CUDA device) global random
  states and those of the random MONAI transforms of a dataset (each keeps its own ``RandomState``).
- :func:`trim_event_files` drops the TensorBoard events that a killed run logged after its last checkpoint, so
  that the resumed run's steps follow on without repeats.
- :class:`ResumableSampler` draws the data order of pass ``p`` from its own generator seeded with ``seed + p`` and
  can start at any batch of any pass, so that a run resumed at iteration ``k`` reads exactly the batches an
  uninterrupted run reads after ``k``.

Both are ``state_dict``/``load_state_dict`` objects that go into a :class:`~monai_msgan.handlers.TrainingCheckpoint`
(all their values are plain numbers and tensors, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from monai_msgan.utils.atomic import atomic_path

__all__ = ["RandomStates", "ResumableSampler", "random_transforms", "trim_event_files"]


def _np_state(rs: np.random.RandomState) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = rs.get_state()
    return {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip


def _set_np_state(rs: np.random.RandomState, state: dict[str, Any]) -> None:
    keys = np.asarray(state["keys"].numpy(), dtype=np.uint32)
    rs.set_state(("MT19937", keys, int(state["pos"]), int(state["has_gauss"]), float(state["cached_gaussian"])))


def random_transforms(transform: Any) -> list[np.random.RandomState]:
    """The ``RandomState`` objects of the random MONAI transforms inside ``transform`` (a ``Compose`` or one
    transform; nested members such as a transform's internal cropper included), in a fixed order."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item, depth + 1)
            return
        state = getattr(obj, "R", None)
        if isinstance(state, np.random.RandomState) and id(state) not in seen:
            seen.add(id(state))
            found.append(state)
        for key, value in sorted(getattr(obj, "__dict__", {}).items()):
            if not key.startswith("__") and (hasattr(value, "__dict__") or isinstance(value, (list, tuple))):
                walk(value, depth + 1)

    walk(transform, 0)
    return found


class RandomStates:
    """The global random states (Python, NumPy, torch CPU and CUDA) and those of ``transforms``' random MONAI
    transforms, as a checkpointable object.

    Args:
        transforms: a transform (e.g. a dataset's ``Compose``) whose random members are saved too; None = none.
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = random_transforms(transforms) if transforms is not None else []
        self.logger = logging.getLogger(__name__)

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = random.getstate()
        state: dict[str, Any] = {
            "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
            "numpy": _np_state(np.random.mtrand._rand),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
            "transforms": [_np_state(rs) for rs in self.transforms],
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"]), py["gauss"]))
        _set_np_state(np.random.mtrand._rand, state["numpy"])
        torch.set_rng_state(state["torch"].cpu())
        cuda = list(state.get("cuda", []))
        if cuda:
            if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
                torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
            else:
                self.logger.warning(
                    f"the checkpoint holds the random states of {len(cuda)} CUDA device(s), this machine has "
                    f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}: CUDA random numbers will "
                    "differ from an uninterrupted run."
                )
        saved = list(state.get("transforms", []))
        if len(saved) != len(self.transforms):
            raise ValueError(
                f"the checkpoint holds the random states of {len(saved)} random transform(s), the data pipeline has "
                f"{len(self.transforms)}: was the preprocessing changed?"
            )
        for rs, s in zip(self.transforms, saved):
            _set_np_state(rs, s)


class ResumableSampler(Sampler[int]):
    """Random order of ``num_items`` items, one pass after another, that can resume at any batch.

    Pass ``p`` is a permutation (or, with ``replacement``, ``num_samples`` draws with replacement) from a
    generator seeded with ``seed + p``: no global random state is used, so the data order does not depend on
    anything else the run draws. :meth:`start_at` places the next iteration at a batch index counted over all
    passes (a data loader with ``drop_last=True`` takes ``num_samples // batch_size`` batches from each pass).

    Args:
        num_items: size of the dataset.
        batch_size: items per batch (to turn a batch index into a pass and an offset).
        replacement: draw with replacement (for datasets smaller than a batch).
        num_samples: items per pass; default ``num_items`` (``batch_size`` with replacement).
        seed: seed of pass 0.
    """

    def __init__(
        self, num_items: int, batch_size: int, replacement: bool = False, num_samples: int | None = None, seed: int = 0
    ) -> None:
        if num_items < 1 or batch_size < 1:
            raise ValueError(f"num_items and batch_size must be at least 1, got {num_items} and {batch_size}.")
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.replacement = bool(replacement)
        default = self.batch_size if replacement else self.num_items
        self.num_samples = int(default if num_samples is None else num_samples)
        if self.num_samples < self.batch_size:
            raise ValueError(f"a pass of {self.num_samples} items holds no full batch of {self.batch_size}.")
        self.seed = int(seed)
        self._pass = 0
        self._skip = 0

    @property
    def batches_per_pass(self) -> int:
        return self.num_samples // self.batch_size

    def start_at(self, batch: int) -> None:
        """Make the next iteration start at global batch index ``batch`` (0 = the first batch of pass 0)."""
        self._pass, offset = divmod(int(batch), self.batches_per_pass)
        self._skip = offset * self.batch_size

    def order(self, p: int) -> torch.Tensor:
        """The item order of pass ``p``."""
        g = torch.Generator().manual_seed(self.seed + p)
        if self.replacement:
            return torch.randint(self.num_items, (self.num_samples,), generator=g)
        return torch.randperm(self.num_items, generator=g)[: self.num_samples]

    def __iter__(self) -> Iterator[int]:
        p, skip = self._pass, self._skip
        self._pass, self._skip = p + 1, 0
        yield from self.order(p)[skip:].tolist()

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "num_items": self.num_items, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["num_items"]) != self.num_items or int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"the checkpoint's data order is for {state['num_items']} items in batches of {state['batch_size']}, "
                f"this run has {self.num_items} in batches of {self.batch_size}: the datalist or batch_size changed."
            )
        self.seed = int(state["seed"])


def trim_event_files(log_dir: str | os.PathLike, last_step: int) -> list[Path]:
    """Remove the events with a step after ``last_step`` from the TensorBoard event files in ``log_dir`` (each file
    rewritten atomically, only when it holds such events). Returns the files rewritten."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    rewritten = []
    folder = Path(log_dir)
    for path in sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []:
        kept, dropped = [], 0
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            if event.step > last_step and not event.HasField("file_version"):
                dropped += 1
            else:
                kept.append(record)
        if dropped:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                writer = RecordWriter(f)
                for record in kept:
                    writer.write(record)
            rewritten.append(path)
    return rewritten
