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
"""Turn X-rays (DICOM of any photometric interpretation, PNG/JPEG/TIFF or 2D NIfTI) into normalised NIfTI training
data plus a MONAI datalist.

    python data_scripts/prepare_xray.py --input scans/ extra.dcm --output data/my_xrays [--validation held_out/]

Writes DIR/images/<name>.nii.gz (intensities in [0, 1], bone bright, stored as (columns, rows) with a coronal
affine) and DIR/datalist.json ({"training": [{"image": ...}], "validation": [...]}, paths relative to DIR).
"""

from __future__ import annotations

import argparse
import sys

from monai_msgan.data import prepare_xrays
from monai_msgan.data.xray import MIN_SIZE
from monai_msgan.utils.validation import arg_type, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, help="X-ray files or folders (not searched recursively)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--validation", nargs="*", default=[], help="files or folders for validation only")
    parser.add_argument(
        "--val-fraction", type=arg_type(minimum=0, maximum=1, exclusive_maximum=True), default=0.1,
        help="random validation share without --validation, in [0, 1)",
    )  # fmt: skip
    parser.add_argument("--seed", type=arg_type(integer=True, minimum=0), default=0, help="seed of the random split")
    percentile = arg_type(minimum=0, maximum=100)
    parser.add_argument("--lower-percentile", type=percentile, default=0.5, help="intensity percentile mapped to 0")
    parser.add_argument("--upper-percentile", type=percentile, default=99.5, help="intensity percentile mapped to 1")
    parser.add_argument("--allow-non-xray", action="store_true", help="accept DICOMs of other modalities (CT, MR...)")
    parser.add_argument(
        "--min-size", type=arg_type(integer=True, minimum=1), default=MIN_SIZE,
        help=f"smallest accepted image side in pixels (default {MIN_SIZE})",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    return run_command(lambda: _prepare(args))


def _prepare(args: argparse.Namespace) -> int:
    datalist = prepare_xrays(
        args.input,
        args.output,
        validation=args.validation,
        val_fraction=args.val_fraction,
        seed=args.seed,
        lower_percentile=args.lower_percentile,
        upper_percentile=args.upper_percentile,
        overwrite=args.overwrite,
        allow_non_xray=args.allow_non_xray,
        min_size=args.min_size,
    )
    print(
        f"wrote {len(datalist['training'])} training and {len(datalist['validation'])} validation images; "
        f"datalist: {args.output}/datalist.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
