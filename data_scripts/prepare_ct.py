#!/usr/bin/env python3
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
"""Turn CT scans (DICOM series folders, NIfTI, MHA/MHD, NRRD) into resampled HU NIfTI training data plus a MONAI
datalist.

    python data_scripts/prepare_ct.py --input dicom_study/ scan.nii.gz --output data/my_cts [--spacing 1 1 1]

Each volume is reoriented to RAS, values below air (e.g. -2048 outside the scan field) set to -1024 HU before
linear resampling to --spacing (mm), clipped to --window (HU) and written as int16 to DIR/images/<name>.nii.gz;
DIR/datalist.json lists them ({"training": [{"image": ...}], "validation": [...]}, paths relative to DIR).
A folder may hold several DICOM series: each becomes its own volume, slices ordered by position.

With --labels (one label map per input volume, in the order the volumes are found, each on its CT's grid), every
label map is resampled onto its prepared CT with nearest-neighbour interpolation to DIR/labels/<name>.nii.gz and
listed as "label" (for the bundles' configs/labels.json); --body-label V marks unlabelled voxels inside the body.

    python data_scripts/prepare_ct.py --input ct1.nii.gz ct2.nii.gz --labels seg1.nii.gz seg2.nii.gz --output DIR
"""

from __future__ import annotations

import argparse
import sys

from monai_msgan.data.ct import DEFAULT_HU_WINDOW, MIN_SIZE, prepare_cts
from monai_msgan.utils.validation import arg_type, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, help="DICOM series folders, volume files or folders")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--spacing", type=arg_type(minimum=0, exclusive_minimum=True), nargs=3, default=[1.0, 1.0, 1.0],
        metavar=("X", "Y", "Z"), help="voxel spacing in mm (positive)",
    )  # fmt: skip
    parser.add_argument("--window", type=arg_type(), nargs=2, default=list(DEFAULT_HU_WINDOW), metavar=("LOW", "HIGH"))
    parser.add_argument("--validation", nargs="*", default=[], help="inputs for validation only")
    parser.add_argument(
        "--val-fraction", type=arg_type(minimum=0, maximum=1, exclusive_maximum=True), default=0.1,
        help="random validation share without --validation, in [0, 1)",
    )  # fmt: skip
    parser.add_argument("--seed", type=arg_type(integer=True, minimum=0), default=0, help="seed of the random split")
    parser.add_argument("--labels", nargs="*", default=[], help="one label map per input volume (same grid)")
    parser.add_argument("--validation-labels", nargs="*", default=[], help="one label map per validation volume")
    parser.add_argument(
        "--body-label", type=arg_type(integer=True, minimum=0), default=None,
        help="value for unlabelled voxels inside the body (default: 0)",
    )  # fmt: skip
    parser.add_argument("--allow-non-ct", action="store_true", help="accept DICOM series whose modality is not CT")
    parser.add_argument(
        "--replace-nonfinite", type=arg_type(), default=None, metavar="HU",
        help="set NaN/infinite voxels to this HU (reported) instead of refusing the volume",
    )  # fmt: skip
    parser.add_argument(
        "--min-size", type=arg_type(integer=True, minimum=1), default=MIN_SIZE,
        help=f"smallest accepted side in voxels after resampling (default {MIN_SIZE})",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.window[0] >= args.window[1]:
        parser.error(f"argument --window: LOW must be below HIGH, got {args.window[0]:g} {args.window[1]:g}")
    return run_command(lambda: _prepare(args))


def _prepare(args: argparse.Namespace) -> int:
    datalist = prepare_cts(
        args.input,
        args.output,
        spacing=args.spacing,
        window=args.window,
        validation=args.validation,
        val_fraction=args.val_fraction,
        seed=args.seed,
        require_ct=not args.allow_non_ct,
        overwrite=args.overwrite,
        replace_nonfinite=args.replace_nonfinite,
        min_size=args.min_size,
        labels=args.labels,
        validation_labels=args.validation_labels,
        body_label=args.body_label,
    )
    print(
        f"wrote {len(datalist['training'])} training and {len(datalist['validation'])} validation volumes; "
        f"datalist: {args.output}/datalist.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
