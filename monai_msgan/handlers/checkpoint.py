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
"""Resumable training checkpoints: saved atomically every N iterations and at the end, restored at start."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from torch import nn

from monai_msgan.utils.atomic import remove_stale_temporaries
from monai_msgan.utils.checkpoints import NonFiniteError, describe, load_weights, save_weights

__all__ = ["TrainingCheckpoint", "snapshot_files", "snapshot_path"]

ENGINE_KEY = "trainer"
SAMPLER_KEY = "sampler"


def snapshot_path(export_file: str | os.PathLike, iteration: int) -> Path:
    """The snapshot of ``export_file``'s network at ``iteration``: ``generator.pt`` -> ``generator_002000.pt``."""
    export_file = Path(export_file)
    return export_file.with_name(f"{export_file.stem}_{int(iteration):06d}{export_file.suffix}")


def _snapshot_pattern(export_file: Path) -> re.Pattern:
    return re.compile(rf"{re.escape(export_file.stem)}_(\d{{6,}}){re.escape(export_file.suffix)}")


def snapshot_files(export_file: str | os.PathLike) -> dict[int, Path]:
    """The snapshots of ``export_file`` on disk (:func:`snapshot_path`), by iteration, in iteration order."""
    export_file = Path(export_file)
    pattern = _snapshot_pattern(export_file)
    found = {}
    if export_file.parent.is_dir():
        for f in export_file.parent.iterdir():
            m = pattern.fullmatch(f.name)
            if m and f.is_file():
                found[int(m.group(1))] = f
    return dict(sorted(found.items()))


class TrainingCheckpoint:
    """Saves and restores everything a killed training run needs to continue where it stopped.

    ``save_dict`` maps names to objects with ``state_dict``/``load_state_dict`` (networks, optimisers, grad
    scalers); the engine's iteration is stored under ``"trainer"``. The file is written atomically (temporary file
    + rename), so a kill during the save leaves the previous checkpoint intact. At ``Events.STARTED`` an existing
    checkpoint is loaded (with ``weights_only=True``) and the engine continues from its iteration. At
    ``Events.COMPLETED`` the final checkpoint is saved and ``export_module``'s weights alone are written to
    ``export_file`` (what inference loads). With ``snapshot_interval``, ``export_module``'s weights are also kept
    every that many iterations beside ``export_file`` (``generator_002000.pt``, :func:`snapshot_path`): quality
    against iterations, or an earlier model than the last, without keeping whole checkpoints. A snapshot is
    written just before the checkpoint of its iteration; a resumed run deletes the snapshots past the iteration it
    resumes from (it writes them again) and a new run refuses to start over existing ones.

    Every file carries its SHA-256 and is checked on load (:func:`~monai_msgan.utils.load_weights`); weights that
    are not finite are never written (:class:`~monai_msgan.utils.NonFiniteError` naming the iteration, and the
    last good checkpoint is kept). Objects named in ``optional`` (random states, added after the first release)
    may be missing from an older checkpoint: it then resumes with a warning. With ``sampler`` (a
    :class:`~monai_msgan.engines.resume.ResumableSampler`), its state is saved and, on resume, it is placed at the
    batch after the saved iteration, so the resumed run reads the data an uninterrupted run would. Temporaries
    that a killed save left behind are removed at start.

    Args:
        checkpoint_file: the resumable checkpoint.
        save_dict: objects to save and restore.
        save_interval: save every this many iterations (0 = only at the end).
        export_file: where to write ``export_module``'s state dict when training completes.
        export_module: the network to export (e.g. the generator).
        map_location: device to load tensors onto.
        read_only: restore at start but never write (the ranks other than 0 of a data-parallel run, which hold
            the same weights as rank 0).
        optional: names in ``save_dict`` that an older checkpoint may lack.
        sampler: the data sampler to save and position on resume (``state_dict``, ``load_state_dict`` and
            ``start_at(batch)``).
        snapshot_interval: keep ``export_module``'s weights every this many iterations (0 = never); needs
            ``export_file``.
    """

    def __init__(
        self,
        checkpoint_file: str | os.PathLike,
        save_dict: Mapping[str, Any],
        save_interval: int = 100,
        export_file: str | os.PathLike | None = None,
        export_module: nn.Module | None = None,
        map_location: Any = "cpu",
        read_only: bool = False,
        optional: tuple[str, ...] = (),
        sampler: Any = None,
        snapshot_interval: int = 0,
    ) -> None:
        if ENGINE_KEY in save_dict or SAMPLER_KEY in save_dict:
            raise ValueError(f"'{ENGINE_KEY}' and '{SAMPLER_KEY}' are reserved for the engine state in save_dict.")
        if (export_file is None) != (export_module is None):
            raise ValueError("give both export_file and export_module, or neither.")
        if snapshot_interval < 0 or (snapshot_interval > 0 and export_file is None):
            raise ValueError(f"snapshot_interval must be >= 0 and needs export_file, got {snapshot_interval}.")
        self.checkpoint_file = Path(checkpoint_file)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.export_file = None if export_file is None else Path(export_file)
        self.export_module = export_module
        self.map_location = map_location
        self.read_only = read_only
        self.optional = tuple(optional)
        self.sampler = sampler
        self.snapshot_interval = snapshot_interval
        self.logger = logging.getLogger(__name__)
        self._state: dict[str, Any] | None = None
        self.last_saved: int | None = None

    def read(self) -> dict[str, Any] | None:
        """Load and check the checkpoint (once; :meth:`load` reuses it), or None when there is none.

        Raises:
            ValueError: when the file is damaged, holds non-finite weights or was not written by this trainer.
        """
        if self._state is None and self.checkpoint_file.is_file():
            state = load_weights(self.checkpoint_file, self.map_location)
            missing = [k for k in [*self.save_dict, ENGINE_KEY] if k not in state and k not in self.optional]
            if missing:
                raise ValueError(
                    f"checkpoint {describe(self.checkpoint_file)} lacks {missing}; it was not written by this trainer."
                )
            self._state = state
            self.last_saved = int(state[ENGINE_KEY]["iteration"])
        return self._state

    @property
    def saved_iteration(self) -> int:
        """Iteration of the checkpoint on disk (0 when there is none)."""
        state = self.read()
        return 0 if state is None else int(state[ENGINE_KEY]["iteration"])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.load)
        if self.read_only:
            return
        if self.snapshot_interval > 0:  # before the checkpoint of the same iteration: a resume never misses one
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.snapshot_interval), self.snapshot)
        if self.save_interval > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.complete)

    def load(self, engine: Engine) -> None:
        """Restore the saved state, if any, and set the engine's iteration."""
        for f in (self.checkpoint_file, self.export_file):
            if f is not None:
                remove_stale_temporaries(f.parent, f.name)
        if self.snapshot_interval > 0 and not self.read_only:
            remove_stale_temporaries(self.export_file.parent, _snapshot_pattern(self.export_file).fullmatch)
        snapshots = {} if self.export_file is None or self.read_only else snapshot_files(self.export_file)
        if not self.checkpoint_file.is_file():
            existing = [f for f in [self.export_file, *snapshots.values()] if f is not None and f.is_file()]
            if existing:
                raise FileExistsError(
                    f"{existing[0]} exists but its training checkpoint {self.checkpoint_file} does not; training "
                    "would overwrite it. Move it away or choose another ckpt_dir."
                )
            return
        state = self.read()
        self._state = None  # not needed any more: free the memory
        for name in [k for k in self.optional if k not in state]:
            self.logger.warning(
                f"{describe(self.checkpoint_file)} has no '{name}' (written by an older version): the resumed run "
                "will not repeat the random numbers of an uninterrupted one."
            )
        for name, obj in self.save_dict.items():
            if name not in state:
                continue
            try:
                obj.load_state_dict(state[name])
            except (RuntimeError, ValueError, KeyError) as e:
                raise ValueError(
                    f"checkpoint {self.checkpoint_file} does not fit '{name}' of this configuration (other network "
                    f"or optimiser settings?). Use another ckpt_dir to train anew. Details: {e}"
                ) from e
        iteration = int(state[ENGINE_KEY]["iteration"])
        epoch_length = engine.state.epoch_length
        max_epochs = engine.state.max_epochs
        total = epoch_length * max_epochs
        if iteration > total:
            self.logger.warning(
                f"{self.checkpoint_file} is at iteration {iteration}, beyond the configured {total}: training is done."
            )
            iteration = total
        engine.load_state_dict({"iteration": iteration, "epoch_length": epoch_length, "max_epochs": max_epochs})
        saved = int(state[ENGINE_KEY]["iteration"])  # not the clamped iteration: a finished run keeps its snapshots
        later = [f for i, f in snapshots.items() if i > saved]
        for f in later:  # written after the last checkpoint by the killed run: this run writes them again
            f.unlink()
        if later:
            self.logger.info(f"removed {len(later)} snapshot(s) after iteration {saved}: {[f.name for f in later]}")
        if self.sampler is not None:
            if SAMPLER_KEY in state:
                self.sampler.load_state_dict(state[SAMPLER_KEY])
            self.sampler.start_at(iteration)
        self.logger.info(f"resumed from {self.checkpoint_file} at iteration {iteration} of {total}")

    def kept(self) -> str:
        """Where the last good checkpoint is, as a sentence for error messages."""
        if self.last_saved is None:
            return "no checkpoint was saved yet"
        return f"the last good checkpoint {self.checkpoint_file} (iteration {self.last_saved}) is kept"

    def save(self, engine: Engine) -> None:
        """Write the checkpoint atomically; refuse (keeping the previous one) when a weight is not finite."""
        iteration = int(engine.state.iteration)
        state = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        state[ENGINE_KEY] = {"iteration": iteration}
        if self.sampler is not None:
            state[SAMPLER_KEY] = self.sampler.state_dict()
        self._write(state, self.checkpoint_file, iteration)
        self.last_saved = iteration

    def snapshot(self, engine: Engine) -> None:
        """Keep ``export_module``'s weights of this iteration (:func:`snapshot_path`), written atomically."""
        iteration = int(engine.state.iteration)
        self._write(self.export_module.state_dict(), snapshot_path(self.export_file, iteration), iteration)

    def _write(self, state: Mapping[str, Any], path: Path, iteration: int) -> None:
        """:func:`save_weights`, its refusal of non-finite weights naming the iteration and the last good checkpoint."""
        try:
            save_weights(state, path)
        except NonFiniteError as e:
            raise NonFiniteError(f"training diverged by iteration {iteration}: {e} ({self.kept()}).") from e

    def complete(self, engine: Engine) -> None:
        """Save the final checkpoint and export the trained network."""
        self.save(engine)
        if self.export_file is not None and self.export_module is not None:
            save_weights(self.export_module.state_dict(), self.export_file)
            self.logger.info(f"wrote {self.export_file}")
