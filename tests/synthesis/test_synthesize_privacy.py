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
"""``synthesize`` with the privacy audit: samples that copy a training image are flagged, and replaced with the
filter on."""

from __future__ import annotations

import json

import pytest

from monai_msgan.data import write_json
from monai_msgan.synthesis import SyntheticDataset
from tests.synthesis.test_synthesize import _generation


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """A training datalist whose first two images are exactly what seeds 3 and 4 make (planted copies), and two
    other samples of the same model."""
    root = tmp_path_factory.mktemp("train")
    files = []
    for seed, name in [(3, "patient_alpha"), (4, "patient_beta"), *[(20 + k, f"patient_{k}") for k in range(2)]]:
        gen = _generation(root / "images", num_samples=1, prefix=name)
        gen.seed = seed
        (path,) = gen.run()
        files.append({"image": path.relative_to(root).as_posix()})
    write_json({"training": files}, root / "datalist.json")
    return root / "datalist.json"


def _text(folder) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.suffix in (".json", ".md"))


def test_copies_of_training_images_are_flagged_without_naming_the_training_files(tmp_path, training):
    out = tmp_path / "audited"
    SyntheticDataset(_generation(out, 3), training_datalist=training).run()  # the audit is on: the datalist exists
    samples = json.loads((out / "manifest.json").read_text())["samples"]
    assert [s["seed"] for s in samples] == [3, 4, 5]
    assert [s["privacy"]["flagged"] for s in samples[:2]] == [True, True]
    assert samples[0]["privacy"]["nearest_training"] == "training[0]"
    assert samples[1]["privacy"]["nearest_training"] == "training[1]"
    assert samples[0]["privacy"]["global_distance"] < samples[2]["privacy"]["global_distance"]
    manifest = json.loads((out / "manifest.json").read_text())["dataset"]
    assert manifest["privacy_audit"]["status"] == "run" and manifest["privacy_audit"]["audit_summaries"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"Flagged as possible copies: {sum(s['privacy']['flagged'] for s in samples)} of 3" in card
    assert "patient_" not in _text(out)  # training file names never reach the shared folder


def test_privacy_filter_replaces_flagged_samples_with_new_seeds(tmp_path, training):
    out = tmp_path / "filtered"
    SyntheticDataset(_generation(out, 3), training_datalist=training, privacy_filter=True).run()
    samples = json.loads((out / "manifest.json").read_text())["samples"]
    assert not any(s["privacy"]["flagged"] for s in samples)
    for s, planted in zip(samples[:2], (3, 4)):
        assert s["attempts"] >= 2 and s["privacy"]["rejected"][0]["seed"] == planted
        assert s["seed"] == planted + 3 * (s["attempts"] - 1)  # replacement seeds step by num_samples
    assert "made again by the privacy filter" in (out / "README.md").read_text(encoding="utf-8")
    assert "patient_" not in _text(out)
