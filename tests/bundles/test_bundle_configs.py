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
"""Checks that every bundle's configuration files agree with each other and describe the bundle."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import REPO_ROOT

BUNDLES = sorted(p.name for p in (REPO_ROOT / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())


def test_both_bundles_are_found():
    assert BUNDLES == ["ct_msgan_3d", "xray_msgan_2d"]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_train_and_inference_define_the_same_network(bundle):
    configs = REPO_ROOT / "bundles" / bundle / "configs"
    train = json.loads((configs / "train.json").read_text())
    infer = json.loads((configs / "inference.json").read_text())
    shared = [
        k for k in infer if k in train and k not in ("imports", "initialize", "device", "bundle_root", "ckpt_dir")
    ]
    assert "network_def" in shared and "patch_size" in shared
    for k in shared:
        assert train[k] == infer[k], f"train.json and inference.json disagree on '{k}'"
    quick = json.loads((configs / "quick.json").read_text())
    assert set(quick) <= set(train), "quick.json may only override ids of train.json"
    for k in ("bundle_root", "dataset_dir", "ckpt_dir", "device", "train_scale"):
        assert k in train
    for k in ("output_size", "num_samples", "seed", "sw_batch_size", "output_dir"):
        assert k in infer


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_describes_the_bundle(bundle):
    root = REPO_ROOT / "bundles" / bundle
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    out = meta["network_data_format"]["outputs"]["pred"]
    infer = json.loads((root / "configs" / "inference.json").read_text())
    assert out["num_channels"] == 1 and out["dtype"] == infer["generation"]["output_dtype"]
    assert len(out["spatial_shape"]) == infer["spatial_dims"]
    for f in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (root / f).is_file()


@pytest.mark.parametrize("bundle", BUNDLES)
def test_targets_are_full_dotted_paths(bundle):

    def targets(node):
        if isinstance(node, dict):
            if "_target_" in node:
                yield node["_target_"]
            for v in node.values():
                yield from targets(v)
        elif isinstance(node, list):
            for v in node:
                yield from targets(v)

    for f in sorted((REPO_ROOT / "bundles" / bundle / "configs").glob("*.json")):
        for t in targets(json.loads(f.read_text())):
            assert t.split(".")[0] in ("monai", "monai_msgan", "torch"), t


@pytest.mark.parametrize("bundle", BUNDLES)
def test_evaluate_uses_the_training_preprocessing(bundle):
    configs = REPO_ROOT / "bundles" / bundle / "configs"
    train = json.loads((configs / "train.json").read_text())
    infer = json.loads((configs / "inference.json").read_text())
    evaluate = json.loads((configs / "evaluate.json").read_text())
    assert "preprocessing" not in evaluate and infer["preprocessing"] == train["preprocessing"]
    assert evaluate["evaluation"]["preprocessing"] == "@preprocessing"
    assert evaluate["evaluation"]["_target_"] == "monai_msgan.metrics.GenerationEvaluation"


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize(
    "layer",
    [
        "sketch.json",
        "labels.json",
        "baseline_patch.json",
        "baseline_lowres.json",
        "baseline_whole.json",
        "recipe_diverse.json",
    ],
)
def test_layers_only_set_ids_that_train_and_inference_use(bundle, layer):
    """Translation and baseline layers go on top of train.json and inference.json alike, so every id they set must
    exist there (a typo would otherwise add an unused id silently)."""
    configs = REPO_ROOT / "bundles" / bundle / "configs"
    train = json.loads((configs / "train.json").read_text())
    infer = json.loads((configs / "inference.json").read_text())
    known = set(train) | set(infer)
    for key in json.loads((configs / layer).read_text()):
        root = key.lstrip("+").split("::")[0].split("#")[0]
        assert root in known or root.startswith(("edge_", "label_")), f"{layer} sets '{key}', which no config uses"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_base_term_ids_reach_the_training_run(bundle):
    # the coverage term's options are ids of train.json that the training run reads; the anchors are off by default
    # (docs/quality.md, run 12)
    train = json.loads((REPO_ROOT / "bundles" / bundle / "configs" / "train.json").read_text())
    for key in ("coverage_weight", "coverage_candidates", "coverage_anchors", "coverage_pool"):
        assert train["training_run"][key] == f"@{key}", key
    assert train["coverage_anchors"] is False and train["coverage_candidates"] == 1 and train["coverage_pool"] == 4
    # so are the diversity term's; it is off by default
    for key in ("diversity_weight", "diversity_space", "diversity_pool"):
        assert train["training_run"][key] == f"@{key}", key
    assert train["diversity_weight"] == 0 and train["diversity_pool"] == 4
    # and the histogram term's (off by default)
    assert train["training_run"]["histogram_weight"] == "@histogram_weight" and train["histogram_weight"] == 0


@pytest.mark.parametrize("layers", [["train.json"], ["train.json", "quick.json"]])
def test_ct_base_discriminator_sees_the_whole_base(layers):
    """Every logit of the CT base discriminator depends on every voxel of the base (the view that run 13 of
    docs/quality.md measured with configs/recipe_diverse.json), in the default and the quick configuration."""
    configs = REPO_ROOT / "bundles" / "ct_msgan_3d" / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / f) for f in layers])
    image_size = parser.get_parsed_content("image_size")
    base = [s // 2 ** (parser.get_parsed_content("num_scales") - 1) for s in image_size]
    disc = parser.get_parsed_content("base_discriminator")().eval()
    in_channels = sum(int(parser.get_parsed_content(k)) for k in ("image_channels", "condition_channels"))
    x = torch.zeros(1, in_channels, *base, requires_grad=True)
    logits = disc(x)
    logits.flatten()[0].backward()  # the first (corner) logit: the one farthest from most voxels
    assert bool((x.grad.abs().sum(1) > 0).all()), f"{layers}: a base voxel the corner logit does not see"


def test_ct_discriminators_augment_without_intensity_and_the_diverse_layer_keeps_it():
    """CT bundle 0.7.0: the discriminators' augmentation is translation and cutout (run 17 of docs/quality.md: the
    intensity operation let grey air pass as real), while configs/recipe_diverse.json sets all three operations, as
    measured; the X-ray bundle keeps all three. Checked on the parsed training run, not only on the raw ids."""

    def augment_ops(bundle: str, layers: list[str]) -> list[str]:
        configs = REPO_ROOT / "bundles" / bundle / "configs"
        parser = ConfigParser()
        parser.read_config([str(configs / f) for f in layers])
        assert parser.get("training_run")["augment"] == "@augment"
        return list(parser.get_parsed_content("augment"))

    assert augment_ops("ct_msgan_3d", ["train.json"]) == ["translation", "cutout"]
    assert augment_ops("ct_msgan_3d", ["train.json", "quick.json"]) == ["translation", "cutout"]
    full = ["translation", "cutout", "intensity"]
    assert augment_ops("ct_msgan_3d", ["train.json", "recipe_diverse.json"]) == full
    assert augment_ops("xray_msgan_2d", ["train.json"]) == full


@pytest.mark.parametrize("bundle", ["ct_msgan_3d", "xray_msgan_2d"])
def test_intensity_augmentation_strength_is_wired_at_the_measured_defaults(bundle):
    """Both bundles pass augment_brightness / augment_contrast to the trainer, at the strength every ablation row up
    to run 18 trained with (the CT layer configs/recipe_diverse.json relies on it), and a CLI override reaches it."""
    configs = REPO_ROOT / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), str(configs / "recipe_diverse.json")])
    run = parser.get("training_run")
    assert run["augment_brightness"] == "@augment_brightness" and run["augment_contrast"] == "@augment_contrast"
    assert (parser.get_parsed_content("augment_brightness"), parser.get_parsed_content("augment_contrast")) == (
        0.25,
        0.5,
    )
    parser["augment_brightness"] = 0.025
    assert parser.get_parsed_content("augment_brightness") == 0.025
