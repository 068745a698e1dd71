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
"""The app's train task: one of its models' bundles trained on the datastore's labelled images, on MONAI Label's
:class:`TrainTask` interface, with the project's own :class:`~monai_msgan.engines.MultiScaleTraining`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
from ignite.engine import Events
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.train import TrainTask

from lib.infers import request_device
from lib.models import GeneratorModel, RequestError, request_int
from monai_msgan.data.io import read_json, write_json
from monai_msgan.engines import MultiScaleTraining

__all__ = ["GeneratorTrainTask", "ReportingTraining", "image_dimension", "training_entries"]

logger = logging.getLogger(__name__)


def image_dimension(path: str) -> int:
    """Number of spatial axes of an image file, from its header (NIfTI) or MONAI's reader (other formats)."""
    if path.endswith((".nii", ".nii.gz")):
        return len(nib.load(path).shape)
    from monai.transforms import LoadImage

    return LoadImage(image_only=True, ensure_channel_first=True)(path).ndim - 1


def training_entries(datastore: Datastore, dimension: int, include_synthetic: bool = False) -> list[dict[str, str]]:
    """``{"image", "label"}`` of the datastore's images with a final label and ``dimension`` spatial axes; images
    marked synthetic (by the batch action) only with ``include_synthetic``."""
    tag = DefaultLabelTag.FINAL.value
    entries = []
    for image_id in sorted(datastore.get_labeled_images()):
        if not include_synthetic and datastore.get_image_info(image_id).get("synthetic"):
            continue
        image = datastore.get_image_uri(image_id)
        if image_dimension(image) != dimension:
            logger.info(f"not training on {image_id}: not {dimension}D")
            continue
        label = datastore.get_label_uri(datastore.get_label_by_image_id(image_id, tag), tag)
        entries.append({"image": image, "label": label})
    return entries


class ReportingTraining(MultiScaleTraining):
    """:class:`~monai_msgan.engines.MultiScaleTraining` that also reports its progress the way MONAI Label reads
    training progress: ``stats_file`` (the train task's ``stats()``, shown under ``train_stats`` on ``/info``) with
    ``epoch``/``total_epochs`` counting iterations over the scales being trained, and a line per ``log_interval`` in
    the task's output (``GET /train/``).

    Args:
        stats_file: where to write the statistics (atomically).
        model_name: the model's name, recorded in the statistics.
        args, kwargs: those of :class:`~monai_msgan.engines.MultiScaleTraining`.
    """

    def __init__(self, *args: Any, stats_file: str, model_name: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats_file = Path(stats_file)
        self.model_name = model_name
        self.stats: dict[str, Any] = {}

    def _write(self, **updates: Any) -> None:
        self.stats.update(updates)
        self.stats["total_time"] = round(time.time() - self._t0, 1)
        write_json(self.stats, self.stats_file)

    def build_trainer(self, scale: int):
        trainer, writer = super().build_trainer(scale)
        done_before = sum(self.num_iterations[s] for s in self.train_scales[: self.train_scales.index(scale)])

        reported = [-1]

        def report(engine: Any) -> None:
            it = engine.state.iteration
            if it == reported[0]:  # the last iteration, already reported by the interval
                return
            reported[0] = it
            output = engine.state.output if isinstance(engine.state.output, dict) else {}
            losses = {k: round(float(output[k]), 5) for k in ("loss_d", "loss_g") if k in output}
            self._write(
                epoch=done_before + it,
                scale=scale,
                iteration=it,
                scale_iterations=self.num_iterations[scale],
                train=losses,
            )
            print(f"progress: scale {scale} iteration {it}/{self.num_iterations[scale]} {losses}", flush=True)

        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=max(1, int(self.log_interval))), report)
        trainer.add_event_handler(Events.COMPLETED, report)
        return trainer, writer

    def run(self) -> list[Path]:
        self._t0 = time.time()
        self.stats = {
            "name": self.model_name,
            "status": "RUNNING",
            "start_ts": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "epoch": 0,
            "total_epochs": sum(self.num_iterations[s] for s in self.train_scales),
            "scales": self.train_scales,
            "images": len(self.train_files),
        }
        self._write()
        try:
            files = super().run()
        except BaseException as e:
            self._write(status="ERROR", error=str(e))
            raise
        self._write(status="DONE", generators=[str(f) for f in files])
        return files


class GeneratorTrainTask(TrainTask):
    """Trains one of the app's models on the datastore's labelled images (``POST /train/<model>``).

    The model's train layers (``configs/monailabel.json``) are used with the datastore's images as the dataset and
    the model folder's ``models/`` as checkpoint folder, so a stopped run resumes from its last checkpoint when
    started again, and ``synthesize``/``translate`` use the new weights as soon as every scale has its
    ``generator.pt``.

    Request parameters: ``num_iterations`` (an integer for every scale, or one per scale; default the bundle's),
    ``train_scale`` (-1 = every scale, default), ``include_synthetic`` (also train on images the batch action added;
    default false), ``device``.
    """

    def __init__(self, model: GeneratorModel) -> None:
        super().__init__(f"Train the multi-scale GAN '{model.name}' on the datastore's labelled images")
        self.model = model

    def config(self) -> dict[str, Any]:
        return {"num_iterations": 0, "train_scale": -1, "include_synthetic": False}

    def stats(self) -> dict[str, Any]:
        try:
            return read_json(self.model.stats_file)
        except (FileNotFoundError, ValueError):
            return {}

    def overrides(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Config overrides from the request's parameters (validated)."""
        model = self.model
        out: dict[str, Any] = {}
        iters = request.get("num_iterations")
        if isinstance(iters, list):
            if len(iters) != model.num_scales:
                raise RequestError(f"'num_iterations' needs one entry per scale ({model.num_scales}), got {iters}.")
            out["num_iterations"] = [request_int({"num_iterations": v}, "num_iterations", 1, 1) for v in iters]
        elif iters not in (None, 0, "0"):
            out["num_iterations"] = request_int(request, "num_iterations", 0, 1)
        scale = request_int(request, "train_scale", -1, -1, model.num_scales - 1)
        if scale >= 0:
            out["train_scale"] = scale
        return out

    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        model = self.model
        if model.error:
            raise RequestError(model.error, status_code=409)
        overrides = self.overrides(request)
        include_synthetic = str(request.get("include_synthetic", False)).lower() in ("true", "1")
        entries = training_entries(datastore, model.spatial_dims, include_synthetic)
        if not entries:
            raise RequestError(
                f"the datastore has no labelled {model.spatial_dims}D images to train '{model.name}' on: label some "
                "(save a final label) first."
            )
        run_dir = model.path / "train"
        write_json({"training": entries}, run_dir / "datalist.json")
        device = request_device(request)
        parser = model.parser(
            "train",
            {
                "dataset_dir": str(run_dir),
                "log_dir": str(model.log_dir),
                "device": f"$torch.device('{device}')",
                "training_run#_target_": "lib.trainers.ReportingTraining",
                "training_run#stats_file": str(model.stats_file),
                "training_run#model_name": model.name,
                **overrides,
            },
        )
        logger.info(f"training '{model.name}' on {len(entries)} images on {device} ({overrides or 'bundle settings'})")
        parser.get_parsed_content("initialize")
        parser.get_parsed_content("training_run").run()
        return self.stats()
