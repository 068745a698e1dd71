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
"""Auditing a folder (or datalist) of generated images against a training datalist, as a JSON report."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_msgan.data.io import write_json
from monai_msgan.privacy.audit import PrivacyAudit, datalist_files, load_image
from monai_msgan.utils.atomic import check_writable

__all__ = ["candidate_files", "audit_report", "main"]

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def candidate_files(
    candidates: str | os.PathLike, section: str = "training", key: str = "image"
) -> tuple[Path, list[Path]]:
    """The images to audit and the folder their names are reported relative to.

    ``candidates`` is a datalist JSON, a folder holding ``datalist.json`` (its ``section``), or a folder of images:
    its NIfTI/MHA/NRRD/DICOM files, or, when it has none, its PNG/JPEG/TIFF files (beside volumes, pictures are
    taken to be previews, as the bundles write them).

    Raises:
        FileNotFoundError: when the path does not exist.
        ValueError: when it holds no image.
    """
    path = Path(candidates)
    if not path.exists():
        raise FileNotFoundError(f"candidates {path} does not exist: give a folder of images or a datalist JSON.")
    if path.is_file() or (path / "datalist.json").is_file():
        datalist = path if path.is_file() else path / "datalist.json"
        return datalist.parent, datalist_files(datalist, section, key)
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    volumes = [p for p in files if _suffix(p) in VOLUME_SUFFIXES]
    chosen = volumes or [p for p in files if _suffix(p) in PICTURE_SUFFIXES]
    if not chosen:
        raise ValueError(
            f"{path} holds no image file ({', '.join(VOLUME_SUFFIXES + PICTURE_SUFFIXES)}) and no datalist.json."
        )
    return path, chosen


def audit_report(audit: PrivacyAudit, files: Sequence[Path], root: Path) -> dict[str, Any]:
    """Check every file and return the report: per candidate its file (relative to ``root``), distances, nearest
    training image and ``flagged``; the audit's summary; the flagged files."""
    rows = []
    for path in files:
        start = time.perf_counter()
        result = audit.check(load_image(path), name=str(path))
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        rows.append({"file": str(rel), **result, "seconds": round(time.perf_counter() - start, 4)})
    flagged = [r["file"] for r in rows if r["flagged"]]
    return {
        "summary": {**audit.summary(), "num_candidates": len(rows), "flagged_files": flagged},
        "candidates": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: returns 0, or 1 with ``--fail-on-flagged`` when a candidate is flagged."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_msgan.privacy",
        description="Flag generated images that copy a training image, whole or in part (docs/privacy.md).",
    )
    parser.add_argument("--training", required=True, help="datalist JSON, or a folder holding datalist.json")
    parser.add_argument("--candidates", required=True, help="folder of generated images, or a datalist JSON")
    parser.add_argument("--output", required=True, help="the JSON report to write")
    parser.add_argument("--held-out", default="validation", help="datalist section of unseen real images ('none')")
    parser.add_argument("--training-section", default="training")
    parser.add_argument("--candidates-section", default="training", help="section when candidates is a datalist")
    parser.add_argument("--key", default="image", help="datalist key of the image files")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=None)
    parser.add_argument("--global-threshold", type=float, default=None, help="with --local-threshold: skip calibration")
    parser.add_argument("--local-threshold", type=float, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--fail-on-flagged", action="store_true", help="exit with status 1 when any image is flagged")
    args = parser.parse_args(argv)

    if (args.global_threshold is None) != (args.local_threshold is None):
        parser.error("give both --global-threshold and --local-threshold, or neither.")
    try:
        output = check_writable(args.output, args.overwrite)
        root, files = candidate_files(args.candidates, args.candidates_section, args.key)
        thresholds = (
            {"global": args.global_threshold, "local": args.local_threshold}
            if args.global_threshold is not None
            else None
        )
        audit = PrivacyAudit.from_datalist(
            args.training,
            spatial_dims=args.spatial_dims,
            key=args.key,
            held_out=None if args.held_out.lower() == "none" else args.held_out,
            training_section=args.training_section,
            thresholds=thresholds,
        )
        report = audit_report(audit, files, root)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    report["summary"]["training"] = str(args.training)
    report["summary"]["candidates"] = str(args.candidates)
    write_json(report, output)
    s = report["summary"]
    print(
        f"{s['num_flagged']} of {s['num_candidates']} candidates flagged as copies of training images "
        f"(thresholds global {s['thresholds']['global']:.4g}, local {s['thresholds']['local']:.4g}, "
        f"calibration: {s['calibration']['method']}); report: {output}"
    )
    return 1 if args.fail_on_flagged and s["num_flagged"] else 0
