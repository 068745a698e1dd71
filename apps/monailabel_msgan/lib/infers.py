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
"""The app's infer tasks, ``synthesize`` and ``translate``, on MONAI Label's :class:`InferTask` interface."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from lib.models import MAX_SAMPLES, GeneratorModel, RequestError, request_int, resolve_model
from lib.synthesis import generate, load_generator, model_grid, to_input_grid, write_samples

__all__ = ["GeneratorInferTask", "request_device"]

logger = logging.getLogger(__name__)

#: Largest seed a request may give (the synthesizer seeds torch generators with it).
MAX_SEED = 2**31 - 1


def request_device(request: Mapping[str, Any]) -> torch.device:
    """The request's ``device`` (MONAI Label clients send ``"cuda"`` by default), CPU when CUDA is not available."""
    name = str(request.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    if name.startswith("cuda") and not torch.cuda.is_available():
        name = "cpu"
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise RequestError(f"'device' must be 'cpu' or 'cuda[:N]', got {name!r}.") from e


class GeneratorInferTask(InferTask):
    """``synthesize`` or ``translate`` with any of the app's generator models.

    Request parameters: ``generator`` (the model's name; optional when the app has one), ``seed`` (integer, default
    0; sample ``i`` uses ``seed + i``), ``num_samples`` (1 to :data:`~lib.models.MAX_SAMPLES`), ``device``.

    - ``synthesize``: a new sample; unconditional models ignore the image's content, label-conditioned models use
      its label map, sketch models the edge map of the image itself (a new image of the same structure).
    - ``translate``: the sketch (sketch models) or label map (label models) drawn on the image, to an image.

    The label or sketch is the one uploaded with the request (``label``) or else the image's label in the datastore
    (tag ``final``, or the request's ``condition_tag``). The result is a NIfTI on the input's grid (its shape and
    affine), intensities in the model's output range; several samples lie along the fourth NIfTI axis.

    Args:
        mode: ``"synthesize"`` or ``"translate"``.
        models: the app's models by name.
        datastore: returns the app's datastore (for the labels of datastore images).
    """

    def __init__(self, mode: str, models: Mapping[str, GeneratorModel], datastore: Callable[[], Datastore]) -> None:
        if mode not in ("synthesize", "translate"):
            raise ValueError(f"mode must be 'synthesize' or 'translate', got {mode!r}.")
        self.mode = mode
        self.models = dict(models)
        self.datastore = datastore
        dims = sorted({m.spatial_dims for m in self.models.values() if not m.error})
        description = {
            "synthesize": "A new synthetic image (from the image's label map or edge map for conditional models)",
            "translate": "The sketch or label map drawn on the image, translated to a synthetic image",
        }[mode]
        super().__init__(
            type=InferType.OTHERS,
            labels=None,
            dimension=dims[0] if len(dims) == 1 else 3,
            description=description,
            config={"generator": sorted(self.models), "seed": 0, "num_samples": 1},
        )

    def is_valid(self) -> bool:
        return True  # listed on /info even without trained models, which info() reports

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["generators"] = {name: m.info() for name, m in self.models.items()}
        info["max_samples"] = MAX_SAMPLES
        return info

    def _label_path(self, request: Mapping[str, Any]) -> str | None:
        if request.get("label"):
            return str(request["label"])
        image_id = request.get("image_id")
        if not image_id:
            return None
        tag = str(request.get("condition_tag") or DefaultLabelTag.FINAL.value)
        label_id = self.datastore().get_label_by_image_id(image_id, tag)
        return self.datastore().get_label_uri(label_id, tag) if label_id else None

    def __call__(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        model = resolve_model(self.models, request)
        seed = request_int(request, "seed", 0, 0, MAX_SEED)
        num_samples = request_int(request, "num_samples", 1, 1, MAX_SAMPLES)
        if seed + num_samples - 1 > MAX_SEED:
            raise RequestError(f"'seed' + 'num_samples' - 1 must be at most {MAX_SEED}.")
        if self.mode == "translate" and model.condition == "none":
            raise RequestError(
                f"model '{model.name}' is unconditional: it has nothing to translate; use synthesize, or a sketch or "
                "label model."
            )
        t0 = time.perf_counter()
        gen = load_generator(model, request_device(request))
        label = self._label_path(request) if (self.mode == "translate" or model.condition == "label") else None
        image, grid, condition = model_grid(gen, request["image"], label, drawn_sketch=self.mode == "translate")
        seeds = list(range(seed, seed + num_samples))
        samples = [to_input_grid(gen, s, grid, image) for s in generate(gen, condition, seeds)]
        path = write_samples(samples, image)
        params = {
            "generator": model.name,
            "task": self.mode,
            "condition": model.condition,
            "seeds": seeds,
            "shape": list(samples[0].shape) + ([num_samples] if num_samples > 1 else []),
            "output_range": gen.output_range,
            "dtype": str(gen.output_dtype),
            "synthetic": True,
            "latencies": {"total": round(time.perf_counter() - t0, 3)},
        }
        logger.info(f"{self.mode} with '{model.name}': seeds {seeds} -> {path}")
        return str(path), params
