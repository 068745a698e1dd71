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
"""Make a model folder of the MONAI Label app from one of the project's bundles.

    python apps/monailabel_msgan/add_model.py --bundle bundles/xray_msgan_2d --name xray_sketch \
        --layers quick.json sketch.json [--checkpoints outputs/sketch/models] [--override '{"num_iterations": 50}']
    python apps/monailabel_msgan/add_model.py --bundle bundles/ct_msgan_3d --name ct_labels --layers quick.json \
        --labels [--label-classes 2]

``--labels`` layers the bundle's label-map conditioning (``configs/labels.json``) last, so the model generates from
a label map (the datastore's label of an image); ``--label-classes N`` takes label values 0..N-1 as they are (no
remapping, e.g. a body mask with 2) instead of the bundle's ``label_mapping``.

The folder ``<model-dir>/<name>/`` gets a copy of the bundle's ``configs/``, a ``configs/monailabel.json`` naming the
layers (``train.json`` or ``inference.json`` first, then ``--layers``) and ``--override``, and, with
``--checkpoints``, a copy of trained checkpoints (``scale_<s>/generator.pt`` and ``checkpoint.pt``) in ``models/``.
An existing folder is never replaced.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

APP_CONFIG = "monailabel.json"  # lib.models.APP_CONFIG (this script runs without MONAI Label installed)
LABEL_LAYER = "labels.json"  # a bundle's label-map conditioning layer


def add_model(
    bundle: Path,
    name: str,
    model_dir: Path,
    layers: list[str],
    overrides: dict | None = None,
    checkpoints: Path | None = None,
    condition: str | None = None,
    labels: bool = False,
    label_classes: int | None = None,
) -> Path:
    """Create ``model_dir/name`` (see the module docstring); returns its path.

    Raises:
        FileExistsError: when the folder exists.
        FileNotFoundError: when the bundle, a layer or the checkpoint folder is missing.
        ValueError: ``label_classes`` without ``labels`` or below 2, or ``labels`` with another ``condition``.
    """
    overrides = dict(overrides or {})
    if labels:
        if condition not in (None, "label"):
            raise ValueError(f"--labels makes a label-map model, not a '{condition}' one.")
        layers = [*[x for x in layers if x != LABEL_LAYER], LABEL_LAYER]
        condition = "label"
        if label_classes is not None:
            if label_classes < 2:
                raise ValueError(f"--label-classes must be at least 2 (background and one class), got {label_classes}.")
            overrides = {"label_num_classes": int(label_classes), "label_mapping": None, **overrides}
    elif label_classes is not None:
        raise ValueError("--label-classes needs --labels.")
    configs = bundle / "configs"
    for layer in ["train.json", "inference.json", *layers]:
        if not (configs / layer).is_file():
            raise FileNotFoundError(f"{configs / layer} does not exist: --bundle must be a bundle folder with it.")
    if checkpoints is not None and not sorted(checkpoints.glob("scale_*/generator.pt")):
        raise FileNotFoundError(f"{checkpoints} holds no scale_<s>/generator.pt: give a ckpt_dir of a trained bundle.")
    target = model_dir / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or choose another --name.")
    tmp = model_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(configs, tmp / "configs")
    settings = {
        "train": ["train.json", *layers],
        "infer": ["inference.json", *layers],
        "overrides": overrides,
    }
    if condition:
        settings["condition"] = condition
    (tmp / "configs" / APP_CONFIG).write_text(json.dumps(settings, indent=2) + "\n")
    if checkpoints is not None:
        for f in sorted(checkpoints.glob("scale_*/*.pt")):
            dest = tmp / "models" / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    tmp.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder, e.g. bundles/xray_msgan_2d")
    p.add_argument("--name", required=True, help="the model's name in the app")
    p.add_argument("--layers", nargs="*", default=[], help="config layers on top of train.json / inference.json")
    p.add_argument("--override", default="{}", help="JSON object of config overrides, e.g. '{\"num_iterations\": 50}'")
    p.add_argument("--checkpoints", type=Path, help="ckpt_dir of a trained run to copy into the model")
    p.add_argument("--condition", choices=["none", "sketch", "label"], help="default: from the configs")
    p.add_argument("--labels", action="store_true", help="layer configs/labels.json: a label-map model")
    p.add_argument("--label-classes", type=int, help="with --labels: label values 0..N-1 used as they are")
    p.add_argument("--model-dir", type=Path, default=Path(__file__).resolve().parent / "model")
    args = p.parse_args(argv)
    try:
        overrides = json.loads(args.override)
        if not isinstance(overrides, dict):
            raise ValueError("it is not a JSON object")
        path = add_model(
            args.bundle,
            args.name,
            args.model_dir,
            args.layers,
            overrides,
            args.checkpoints,
            args.condition,
            args.labels,
            args.label_classes,
        )
    except (ValueError, OSError) as e:
        print(f"add_model: {e}", file=sys.stderr)
        return 1
    print(f"model '{args.name}' in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
