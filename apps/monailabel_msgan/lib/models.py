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
"""Generator models of the MONAI Label app: bundle folders in the app's model folder, and request validation.

A model is a folder ``<model_dir>/<name>/`` laid out like a MONAI bundle: ``configs/`` (the bundle's configs and
``monailabel.json``, which lists the config layers to train and generate with and any overrides) and ``models/``
(the checkpoints written by training: ``models/scale_<s>/generator.pt``). ``add_model.py`` makes such a folder from
one of the project's bundles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monai.bundle import ConfigParser

from monai_msgan.data.io import read_json
from monai_msgan.utils.checkpoints import generator_path

__all__ = [
    "APP_CONFIG",
    "CONDITIONS",
    "MAX_PAIRS",
    "MAX_SAMPLES",
    "GeneratorModel",
    "RequestError",
    "find_models",
    "request_int",
    "resolve_model",
]

#: File in a model's ``configs/`` naming the config layers the app uses.
APP_CONFIG = "monailabel.json"
#: Largest ``num_samples`` of one ``synthesize``/``translate`` request (each sample is a full-size image in memory).
MAX_SAMPLES = 8
#: Largest ``num_pairs`` of one batch action.
MAX_PAIRS = 100
#: How a model is conditioned: ``none`` (unconditional), ``sketch`` (an edge map computed from the image, or a sketch
#: drawn on it) or ``label`` (a label map, loaded by the bundle's preprocessing under the key ``label``).
CONDITIONS = ("none", "sketch", "label")

logger = logging.getLogger(__name__)


class RequestError(HTTPException):
    """A request the app refuses, answered with ``status_code`` (4xx) and ``message`` as the response's detail."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code=status_code, detail=message)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


def request_int(
    request: Mapping[str, Any], key: str, default: int, low: int | None = None, high: int | None = None
) -> int:
    """``request[key]`` as an int (``default`` when absent), within ``[low, high]``.

    Accepts ints and strings of ints (form fields arrive as strings); refuses floats, booleans and anything else.

    Raises:
        RequestError: 400 naming the parameter, the value and what is allowed.
    """
    value = request.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RequestError(f"'{key}' must be an integer, got {value!r}.")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise RequestError(f"'{key}' must be an integer, got {value!r}.") from None
    if low is not None and value < low or high is not None and value > high:
        allowed = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else (f"at least {low}" if low is not None else f"at most {high}")
        )
        raise RequestError(f"'{key}' must be {allowed}, got {value}.")
    return int(value)


class GeneratorModel:
    """One model folder of the app.

    Args:
        name: the model's name (its folder name).
        path: the folder ``<model_dir>/<name>``.

    Attributes:
        error: why the model cannot be used (no folder, unreadable configs), or None. A model whose configs are fine
            but whose checkpoints are missing has no ``error``; :meth:`missing_checkpoints` says what to train.
    """

    def __init__(self, name: str, path: str | Path) -> None:
        self.name = name
        self.path = Path(path)
        self.error: str | None = None
        self.settings: dict[str, Any] = {}
        self.spatial_dims = 0
        self.num_scales = 0
        self.image_size: list[int] = []
        self.condition = "none"
        try:
            self._read()
        except Exception as e:  # any problem of the folder is reported on /info and /infer, never a crash
            self.error = str(e)
            logger.warning(f"model '{name}' cannot be used: {e}")

    @property
    def config_dir(self) -> Path:
        return self.path / "configs"

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "models"

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    @property
    def stats_file(self) -> Path:
        return self.path / "train_stats.json"

    def _read(self) -> None:
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"no model folder {self.path}; make one with apps/monailabel_msgan/add_model.py (see the app's README)."
            )
        settings_file = self.config_dir / APP_CONFIG
        settings = read_json(settings_file)
        if not isinstance(settings, dict):
            raise ValueError(f"{settings_file} must hold a JSON object.")
        for kind in ("train", "infer"):
            layers = settings.get(kind)
            if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
                raise ValueError(f"{settings_file}: '{kind}' must be a non-empty list of config file names.")
            for layer in layers:
                if not (self.config_dir / layer).is_file():
                    raise FileNotFoundError(
                        f"{settings_file}: '{kind}' lists {layer}, which is not in {self.config_dir}."
                    )
        if not isinstance(settings.get("overrides", {}), dict):
            raise ValueError(f"{settings_file}: 'overrides' must be a JSON object.")
        self.settings = settings
        parser = self.parser("infer")
        self.spatial_dims = int(parser.get_parsed_content("spatial_dims"))
        self.num_scales = int(parser.get_parsed_content("num_scales"))
        self.image_size = [int(s) for s in parser.get_parsed_content("image_size")]
        condition_key = parser.get_parsed_content("condition_key")
        # the label layer (configs/labels.json) encodes the datalist's ``label`` into its own condition_key
        labelled = condition_key == "label" or "label_preprocessing" in parser
        default = "none" if not condition_key else "label" if labelled else "sketch"
        self.condition = settings.get("condition", default)
        if self.condition not in CONDITIONS:
            raise ValueError(f"{settings_file}: 'condition' must be one of {CONDITIONS}, got {self.condition!r}.")
        if (self.condition == "none") != (not condition_key):
            raise ValueError(
                f"{settings_file}: 'condition' is {self.condition!r}, but the configs' condition_key is "
                f"{condition_key!r}."
            )

    def parser(self, kind: str, overrides: Mapping[str, Any] | None = None) -> ConfigParser:
        """The bundle configuration of ``kind`` (``"train"`` or ``"infer"``): its layers, the model's overrides, then
        ``overrides``, with ``bundle_root`` and ``ckpt_dir`` pointing into the model folder."""
        parser = ConfigParser()
        parser.read_config([str(self.config_dir / layer) for layer in self.settings[kind]])
        parser["bundle_root"] = str(self.path)
        parser["ckpt_dir"] = str(self.ckpt_dir)
        for key, value in {**self.settings.get("overrides", {}), **dict(overrides or {})}.items():
            parser[key] = value
        return parser

    def missing_checkpoints(self) -> list[Path]:
        """The scales' ``generator.pt`` files that training has not written yet."""
        return [
            generator_path(self.ckpt_dir, s)
            for s in range(self.num_scales)
            if not generator_path(self.ckpt_dir, s).is_file()
        ]

    def status(self) -> str | None:
        """Why the model cannot generate now (broken folder or untrained scales), or None when it can."""
        if self.error:
            return self.error
        missing = self.missing_checkpoints()
        if missing:
            return (
                f"model '{self.name}' is not trained: missing {', '.join(str(p) for p in missing)}; "
                f"train it with POST /train/{self.name} or copy its checkpoints into {self.ckpt_dir}."
            )
        return None

    def info(self) -> dict[str, Any]:
        """What /info shows of the model."""
        status = self.status()
        info: dict[str, Any] = {"ready": status is None, "path": str(self.path)}
        if status:
            info["error"] = status
        if not self.error:
            info.update(
                dimension=self.spatial_dims,
                condition=self.condition,
                image_size=self.image_size,
                num_scales=self.num_scales,
                layers={k: self.settings[k] for k in ("train", "infer")},
            )
        return info


def find_models(model_dir: str | Path, names: str | Sequence[str] = "all") -> dict[str, GeneratorModel]:
    """The app's models: every folder of ``model_dir`` holding ``configs/monailabel.json`` (``names="all"``), or the
    named ones (comma-separated or a list), which are listed with an error when their folder is missing."""
    model_dir = Path(model_dir)
    if isinstance(names, str):
        if names.strip() == "all":
            names = sorted(p.parent.parent.name for p in model_dir.glob(f"*/configs/{APP_CONFIG}"))
        else:
            names = [n.strip() for n in names.split(",") if n.strip()]
    return {name: GeneratorModel(name, model_dir / name) for name in names}


def resolve_model(
    models: Mapping[str, GeneratorModel], request: Mapping[str, Any], ready: bool = True
) -> GeneratorModel:
    """The model a request names under ``"generator"`` (or the only model, when there is one).

    Raises:
        RequestError: 404 for an unknown name, 400 when no name is given and there is a choice, 409 when the model
            cannot generate (``ready``: broken folder or missing checkpoints).
    """
    name = request.get("generator")
    if name is None:
        if len(models) != 1:
            raise RequestError(
                f"name a model in the request parameter 'generator': one of {sorted(models)}."
                if models
                else "the app has no models: add one to its model folder (see the app's README)."
            )
        name = next(iter(models))
    if not isinstance(name, str) or name not in models:
        raise RequestError(f"unknown model {name!r}; this app has {sorted(models)}.", status_code=404)
    model = models[name]
    status = model.error if not ready else model.status()
    if status:
        raise RequestError(status, status_code=409)
    return model
