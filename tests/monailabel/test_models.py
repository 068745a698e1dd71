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
"""The app's model folders and request validation, in process (MONAI Label's environment; MSGAN_TEST_MONAILABEL=1)."""

from __future__ import annotations

import json
import os
import sys

import pytest

if os.environ.get("MSGAN_TEST_MONAILABEL") != "1":
    pytest.skip("MONAI Label app tests: set MSGAN_TEST_MONAILABEL=1 (make test-monailabel)", allow_module_level=True)

from tests.monailabel.conftest import APP_DIR, REPO_ROOT, TINY_2D  # noqa: E402

sys.path.insert(0, str(APP_DIR))
from add_model import add_model  # noqa: E402
from lib.models import MAX_SAMPLES, RequestError, find_models, request_int, resolve_model  # noqa: E402

sys.path.remove(str(APP_DIR))

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"


@pytest.mark.parametrize(
    "value,expected", [(None, 0), (3, 3), ("7", 7), (" 2 ", 2), (1.5, None), ("x", None), (True, None), ([1], None)]
)
def test_request_int(value, expected):
    request = {} if value is None else {"seed": value}
    if expected is None:
        with pytest.raises(RequestError, match="'seed' must be an integer") as e:
            request_int(request, "seed", 0, 0, 10)
        assert e.value.status_code == 400
    else:
        assert request_int(request, "seed", 0, 0, 10) == expected


def test_request_int_limits():
    with pytest.raises(RequestError, match=f"between 1 and {MAX_SAMPLES}, got 9"):
        request_int({"num_samples": 9}, "num_samples", 1, 1, MAX_SAMPLES)
    with pytest.raises(RequestError, match="'num_iterations' must be at least 1, got 0"):
        request_int({"num_iterations": "0"}, "num_iterations", 5, 1)


def test_models_found_missing_and_broken(tmp_path):
    add_model(BUNDLE, "plain", tmp_path, ["quick.json"], TINY_2D)
    add_model(BUNDLE, "sketch", tmp_path, ["quick.json", "sketch.json"], TINY_2D)
    broken = add_model(BUNDLE, "broken", tmp_path, ["quick.json"])
    (broken / "configs" / "monailabel.json").write_text(json.dumps({"train": ["train.json"], "infer": ["nope.json"]}))
    with pytest.raises(FileExistsError):
        add_model(BUNDLE, "plain", tmp_path, [])

    models = find_models(tmp_path, "all")
    assert sorted(models) == ["broken", "plain", "sketch"]
    assert models["plain"].condition == "none" and models["sketch"].condition == "sketch"
    assert models["plain"].spatial_dims == 2 and models["plain"].image_size == [64, 64]
    assert "nope.json" in models["broken"].error and models["broken"].info()["ready"] is False
    assert "not trained" in models["plain"].status() and "scale_1/generator.pt" in models["plain"].status()

    named = find_models(tmp_path, "plain, gone")
    assert sorted(named) == ["gone", "plain"] and "no model folder" in named["gone"].error

    with pytest.raises(RequestError, match="unknown model 'x'") as e:
        resolve_model(models, {"generator": "x"})
    assert e.value.status_code == 404
    with pytest.raises(RequestError, match="name a model") as e:
        resolve_model(models, {})
    with pytest.raises(RequestError, match="not trained") as e:
        resolve_model(models, {"generator": "plain"})
    assert e.value.status_code == 409
    assert resolve_model(models, {"generator": "plain"}, ready=False).name == "plain"


def test_add_model_label_layer(tmp_path):
    ct_bundle = REPO_ROOT / "bundles" / "ct_msgan_3d"
    path = add_model(ct_bundle, "labels", tmp_path, ["quick.json", "labels.json"], labels=True, label_classes=2)
    settings = json.loads((path / "configs" / "monailabel.json").read_text())
    assert settings["infer"] == ["inference.json", "quick.json", "labels.json"]  # the label layer once, last
    assert settings["condition"] == "label"
    assert settings["overrides"] == {"label_num_classes": 2, "label_mapping": None}
    model = find_models(tmp_path, "labels")["labels"]
    assert model.error is None and model.condition == "label" and model.spatial_dims == 3
    # the bundle's own label mapping when no class count is given; the configs alone make it a label model
    path = add_model(ct_bundle, "mapped", tmp_path, ["quick.json"], labels=True)
    settings = json.loads((path / "configs" / "monailabel.json").read_text())
    settings.pop("condition")
    (path / "configs" / "monailabel.json").write_text(json.dumps(settings))
    assert settings["overrides"] == {} and find_models(tmp_path, "mapped")["mapped"].condition == "label"
    with pytest.raises(ValueError, match="--label-classes needs --labels"):
        add_model(ct_bundle, "bad", tmp_path, [], label_classes=2)
    with pytest.raises(ValueError, match="not a 'sketch' one"):
        add_model(ct_bundle, "bad", tmp_path, [], labels=True, condition="sketch")
    with pytest.raises(ValueError, match="at least 2"):
        add_model(ct_bundle, "bad", tmp_path, [], labels=True, label_classes=1)
