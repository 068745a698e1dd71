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
"""Mean HU per label class of a CT and its label map: does a label-conditioned CT put bone where the labels say
bone, lung where they say lung? Optionally a panel PNG: the label map's middle planes next to the image's.

    # a label-conditioned sample (labels already grouped into classes by configs/labels.json)
    python benchmarks/label_hu.py --image outputs/ct_labels/ct_000.nii.gz \
        --label outputs/ct_labels/ct_000_label.nii.gz --expect_higher bone lung \
        --output outputs/ct_labels/label_hu.json --panel outputs/ct_labels/label_panel.png
    # the real demo CT with its 89-structure segmentation, grouped the same way (the reference numbers)
    python benchmarks/label_hu.py --image data/ct_demo_labels/images/cxr.nii.gz \
        --label data/ct_demo_labels/labels/cxr.nii.gz --mapping demo

Prints a table and, with --output, writes JSON. With --expect_higher A B the exit code is 1 when the mean of class
A is not above that of class B (or a class is absent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_msgan.data.io import mid_planes, montage, write_json
from monai_msgan.data.labels import CT_LABEL_CLASSES, DEMO_CT_LABEL_MAPPING
from monai_msgan.metrics.labels import label_statistics
from monai_msgan.transforms.labels import LabelRemap
from monai_msgan.utils.atomic import atomic_path, check_writable

#: RGB of each class of CT_LABEL_CLASSES in the panel: outside, body, lung, bone, soft tissue.
CLASS_COLOURS = np.array([[0, 0, 0], [205, 170, 125], [70, 130, 220], [245, 245, 245], [200, 60, 60]], np.uint8)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def panel(image: np.ndarray, labels: np.ndarray, window: tuple[float, float] = (-1000.0, 1000.0)) -> np.ndarray:
    """``(rows, columns, 3)`` uint8: the label map's middle planes in class colours above the image's, greyscale."""
    grey = montage(mid_planes(torch.as_tensor(image, dtype=torch.float32)[None]), 4096).numpy()
    lab = montage(mid_planes(torch.as_tensor(labels.astype(np.int64))[None]), 4096).numpy().round().astype(np.int64)
    colours = np.concatenate([CLASS_COLOURS, np.full((max(0, lab.max() + 1 - len(CLASS_COLOURS)), 3), 128, np.uint8)])
    lo, hi = window
    u8 = np.clip((grey - lo) * 255.0 / (hi - lo), 0, 255).round().astype(np.uint8)
    return np.concatenate([colours[np.clip(lab, 0, None)], np.repeat(u8[..., None], 3, axis=-1)], axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, required=True, help="CT volume (NIfTI, HU)")
    parser.add_argument("--label", type=Path, required=True, help="its label map (NIfTI, same grid)")
    parser.add_argument(
        "--mapping", choices=["none", "demo"], default="none",
        help="'demo': group the demo CT's structure values into classes first (as configs/labels.json does)",
    )  # fmt: skip
    parser.add_argument("--expect_higher", nargs=2, metavar=("A", "B"), help="fail unless mean(A) > mean(B)")
    parser.add_argument("--output", type=Path, help="JSON result")
    parser.add_argument("--panel", type=Path, help="PNG: label map next to the image (middle planes)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    try:
        for out in (args.output, args.panel):
            if out is not None:
                check_writable(out, args.overwrite)
        image, affine = _load(args.image)
        labels, label_affine = _load(args.label)
        if image.shape != labels.shape or not np.allclose(affine, label_affine, atol=1e-3):
            raise ValueError(
                f"{args.label}: shape {labels.shape} / affine differ from {args.image} ({image.shape}): "
                "not on the same grid."
            )
        if args.mapping == "demo":
            labels = LabelRemap(DEMO_CT_LABEL_MAPPING)(torch.as_tensor(labels.astype(np.int64))).numpy()
        stats = label_statistics(image, labels, CT_LABEL_CLASSES)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'class':<12} {'voxels':>10} {'mean HU':>9} {'std':>8} {'median':>8}")
    for name, s in stats.items():
        print(f"{name:<12} {s['voxels']:>10} {s['mean']:>9.1f} {s['std']:>8.1f} {s['median']:>8.1f}")
    result = {"image": str(args.image), "label": str(args.label), "mapping": args.mapping, "classes": stats}
    ok = True
    if args.expect_higher:
        a, b = args.expect_higher
        ok = a in stats and b in stats and stats[a]["mean"] > stats[b]["mean"]
        result["expect_higher"] = {"higher": a, "lower": b, "holds": ok}
        print(f"mean HU of {a} > {b}: {'yes' if ok else 'NO'}")
    if args.output is not None:
        write_json(result, args.output)
    if args.panel is not None:
        from PIL import Image

        with atomic_path(args.panel) as tmp:
            Image.fromarray(panel(image, labels), mode="RGB").save(tmp, format="PNG")
        print(f"panel: {args.panel}")
    if args.output is not None:
        print(json.dumps({"output": str(args.output)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
