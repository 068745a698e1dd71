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
"""MONAI Label app of monai-msgan: synthesis, translation, training and synthetic pairs from the annotation server.

Start it with ``monailabel start_server --app apps/monailabel_msgan --studies DIR --conf models all`` (see README.md).
Conf keys: ``models`` (``all``, or comma-separated names in the model folder), ``model_dir`` (default: ``model/`` in
this folder).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lib.batch import SyntheticPairs
from lib.infers import GeneratorInferTask
from lib.models import RequestError, find_models
from lib.trainers import GeneratorTrainTask
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

import monai_msgan

logger = logging.getLogger(__name__)


class MSGANApp(MONAILabelApp):
    """The app: infer tasks ``synthesize`` and ``translate``, one train task per model, the synthetic-pairs batch
    action; requests are validated here and in the tasks, and refused with 4xx and a message saying what is wrong."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.model_dir = os.path.realpath(conf.get("model_dir") or os.path.join(app_dir, "model"))
        self.models = find_models(self.model_dir, conf.get("models", "all"))
        for name, model in self.models.items():
            logger.info(f"model '{name}': {model.status() or 'ready'}")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai-msgan",
            description="Multi-scale GAN synthesis of large 2D/3D medical images",
            version=monai_msgan.__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        return {mode: GeneratorInferTask(mode, self.models, self.datastore) for mode in ("synthesize", "translate")}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {name: GeneratorTrainTask(model) for name, model in self.models.items()}

    def init_batch_infer(self) -> SyntheticPairs:
        return SyntheticPairs(self.models)

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["generators"] = {name: model.info() for name, model in self.models.items()}
        info["model_dir"] = self.model_dir
        return info

    def infer(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        task = request.get("model")
        if task not in self._infers:
            raise RequestError(f"unknown infer task {task!r}; this app has {sorted(self._infers)}.", status_code=404)
        image = request.get("image")
        request = dict(request)
        if isinstance(image, str) and not os.path.exists(image):
            store = datastore or self.datastore()
            if image not in store.list_images():
                raise RequestError(f"no image {image!r} in the datastore.", status_code=404)
            request["image_id"] = image
        request["save_label"] = False  # a synthetic image is never saved as the input's label
        return super().infer(request, datastore)

    def bundle_path(self, model: str | None) -> str | None:
        # MONAI Label asks this before it starts a training or batch subprocess: refuse an unknown model here, with
        # 404, instead of a subprocess that fails
        if model is not None and model not in self._trainers and model not in self._infers:
            raise RequestError(f"unknown model {model!r}; this app trains {sorted(self._trainers)}.", status_code=404)
        return None
