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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from torch import nn

from monai_msgan.utils.atomic import remove_stale_temporaries
from monai_msgan.utils.checkpoints import NonFiniteError, describe, load_weights, save_weights

__all__ = ["TrainingCheckpoint"]

ENGINE_KEY = "trainer"
SAMPLER_KEY = "sampler"


class TrainingCheckpoint:
    """Saves and restores everything a killed training run needs to continue where it stopped.

    ``save_dict`` maps names to objects with ``state_dict``/``load_state_dict`` (networks, optimisers, grad
    scalers); the engine's iteration is stored under ``"trainer"``. The file is written atomically (temporary file
    + rename), so a kill during the save leaves the previous checkpoint intact. At ``Events.STARTED`` an existing
    checkpoint is loaded (with ``weights_only=True``) and the engine continues from its iteration. At
    ``Events.COMPLETED`` the final checkpoint is saved and ``export_module``'s weights alone are written to
    ``export_file`` (what inference loads).

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
    ) -> None:
        if ENGINE_KEY in save_dict or SAMPLER_KEY in save_dict:
            raise ValueError(f"'{ENGINE_KEY}' and '{SAMPLER_KEY}' are reserved for the engine state in save_dict.")
        if (export_file is None) != (export_module is None):
            raise ValueError("give both export_file and export_module, or neither.")
        self.checkpoint_file = Path(checkpoint_file)
        self.save_dict = dict(save_dict)
        self.save_interval = save_interval
        self.export_file = None if export_file is None else Path(export_file)
        self.export_module = export_module
        self.map_location = map_location
        self.read_only = read_only
        self.optional = tuple(optional)
        self.sampler = sampler
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
        if self.save_interval > 0:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.complete)

    def load(self, engine: Engine) -> None:
        """Restore the saved state, if any, and set the engine's iteration."""
        for f in (self.checkpoint_file, self.export_file):
            if f is not None:
                remove_stale_temporaries(f.parent, f.name)
        if not self.checkpoint_file.is_file():
            if self.export_file is not None and self.export_file.is_file():
                raise FileExistsError(
                    f"{self.export_file} exists but its training checkpoint {self.checkpoint_file} does not; training "
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
        try:
            save_weights(state, self.checkpoint_file)
        except NonFiniteError as e:
            raise NonFiniteError(f"training diverged by iteration {iteration}: {e} ({self.kept()}).") from e
        self.last_saved = iteration

    def complete(self, engine: Engine) -> None:
        """Save the final checkpoint and export the trained network."""
        self.save(engine)
        if self.export_file is not None and self.export_module is not None:
            save_weights(self.export_module.state_dict(), self.export_file)
            self.logger.info(f"wrote {self.export_file}")
