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
"""Reading CT volumes (DICOM series, NIfTI, MHA/NRRD) and turning them into resampled HU NIfTI training data."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monai_msgan.data.datalist import split_validation, unique_names
from monai_msgan.data.io import write_json
from monai_msgan.data.xray import _is_dicom, _suffix, check_no_overlap, content_digest
from monai_msgan.utils.atomic import atomic_path, check_writable, staged_folder

__all__ = [
    "CTVolume",
    "HU_AIR",
    "DEFAULT_HU_WINDOW",
    "read_dicom_series",
    "read_ct_volume",
    "find_ct_volumes",
    "standardise_ct",
    "prepare_cts",
]

#: Hounsfield units of air; anything below (e.g. -2048 or -3024 outside the scan's field of view) is set to it.
HU_AIR = -1024.0
#: Default HU window kept in the prepared data (and mapped to the model range by the bundle).
DEFAULT_HU_WINDOW = (-1024.0, 3071.0)
#: Smallest side (voxels, after resampling) of a volume prepare_cts accepts by default.
MIN_SIZE = 8
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


@dataclass
class CTVolume:
    """A CT volume as a SimpleITK image in HU, with a name for its output file and where it came from."""

    image: object  # SimpleITK.Image
    name: str
    source: str


def _sitk():
    import SimpleITK as sitk

    return sitk


def _series_error(files: Sequence[Path], message: str) -> ValueError:
    return ValueError(f"{files[0].parent}: {message}")


def read_dicom_series(folder: str | os.PathLike, require_ct: bool = True) -> list[CTVolume]:
    """Read every DICOM series in ``folder`` (told apart by SeriesInstanceUID) as a HU volume.

    Slices are ordered by their position along the slice normal (not by file name); rescale slope/intercept are
    applied. Each series is checked: one orientation, pixel spacing and matrix size for all slices, no duplicate
    positions (mixed series), a uniform slice spacing (no missing slice), at least two slices (3D), and, with
    ``require_ct``, modality CT.

    Raises:
        ValueError: naming the folder or file and what is wrong.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut

    sitk = _sitk()
    folder = Path(folder)
    headers: dict[str, list[tuple[Path, object]]] = defaultdict(list)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not _is_dicom(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as e:
            raise ValueError(f"{path}: cannot read DICOM: {e}") from e
        if "SeriesInstanceUID" not in ds:
            raise ValueError(f"{path}: no SeriesInstanceUID; not an image slice of a series.")
        headers[str(ds.SeriesInstanceUID)].append((path, ds))
    if not headers:
        raise ValueError(f"{folder}: no DICOM files found.")
    volumes = []
    for k, (uid, items) in enumerate(sorted(headers.items())):
        files = [p for p, _ in items]
        first = items[0][1]
        modality = str(first.get("Modality", ""))
        if require_ct and modality != "CT":
            raise _series_error(files, f"series {uid} has modality '{modality}' ({files[0].name}); CT is required.")
        for p, ds in items:
            for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
                if tag not in ds:
                    raise ValueError(f"{p}: missing {tag}; cannot place the slice in a volume.")
            for tag in ("ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
                a, b = np.asarray(ds.get(tag), dtype=float), np.asarray(first.get(tag), dtype=float)
                if a.shape != b.shape or not np.allclose(a, b, atol=1e-4):
                    raise ValueError(
                        f"{p}: {tag} {list(np.atleast_1d(a))} differs from {files[0].name} "
                        f"({list(np.atleast_1d(b))}): inconsistent slices in series {uid}."
                    )
        if len(items) < 2:
            raise _series_error(files, f"series {uid} has a single slice ({files[0].name}); a 3D volume is expected.")
        iop = np.asarray(first.ImageOrientationPatient, dtype=float)
        row_dir, col_dir = iop[:3], iop[3:]
        normal = np.cross(row_dir, col_dir)
        positions = np.array([np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal) for _, ds in items])
        order = np.argsort(positions, kind="stable")
        items = [items[i] for i in order]
        positions = positions[order]
        gaps = np.diff(positions)
        if np.any(gaps < 1e-3):
            i = int(np.argmin(gaps))
            raise ValueError(
                f"{items[i + 1][0]}: same position as {items[i][0].name}: mixed or duplicated slices in series {uid}."
            )
        step = float(np.median(gaps))
        bad = np.nonzero(np.abs(gaps - step) > 0.1 * step)[0]
        if bad.size:
            i = int(bad[0])
            kind = "missing slice(s)" if gaps[i] > step else "inconsistent slice spacing"
            raise ValueError(
                f"{items[i + 1][0]}: {kind} in series {uid}: {gaps[i]:.3f} mm after {items[i][0].name}, "
                f"{step:.3f} mm elsewhere."
            )
        slices = []
        for p, _ in items:
            try:
                ds = pydicom.dcmread(p)
                slices.append(apply_modality_lut(ds.pixel_array, ds).astype(np.float32))
            except Exception as e:
                raise ValueError(f"{p}: cannot read DICOM pixel data: {e}") from e
        image = sitk.GetImageFromArray(np.stack(slices))  # (slice, row, column) -> x = column, y = row, z = slice
        col_spacing, row_spacing = (float(v) for v in (first.PixelSpacing[1], first.PixelSpacing[0]))
        image.SetSpacing((col_spacing, row_spacing, step))
        image.SetOrigin(tuple(float(v) for v in items[0][1].ImagePositionPatient))
        image.SetDirection(tuple(np.stack([row_dir, col_dir, normal], axis=1).ravel()))
        description = str(first.get("SeriesDescription", "") or "").strip()
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in description)[:40] or f"series{k}"
        volumes.append(CTVolume(image, f"{folder.name}_{stem}", str(folder)))
    return volumes


def _nifti_voxels(path: Path, image):
    """ITK's NIfTI reader fills a truncated file's missing voxels and NaN/Inf with zeros without a word; read the
    voxels with nibabel, which refuses incomplete data and keeps non-finite values for the caller to judge."""
    import nibabel as nib

    sitk = _sitk()
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    except Exception as e:
        raise ValueError(f"{path}: cannot read volume: {e}") from e
    data = data.reshape(image.GetSize(), order="F") if data.size == np.prod(image.GetSize()) else None
    if data is None:
        raise ValueError(f"{path}: cannot read volume: the voxel data do not match the header's size.")
    if np.isfinite(data).all():
        return image
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))  # (x, y, z) -> SimpleITK's (z, y, x)
    out.CopyInformation(image)
    return out


def read_ct_volume(path: str | os.PathLike) -> CTVolume:
    """Read a NIfTI, MHA/MHD or NRRD volume (values in HU).

    Raises:
        ValueError: naming the file when it cannot be read or is not 3D.
    """
    sitk = _sitk()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    except Exception as e:
        raise ValueError(f"{path}: cannot read volume: {e}") from e
    size = image.GetSize()
    if image.GetDimension() != 3 or sum(s > 1 for s in size) < 3:
        raise ValueError(
            f"{path}: image of size {list(size)} is not a 3D volume (2D X-rays go through prepare_xray.py)."
        )
    if path.name.lower().endswith((".nii", ".nii.gz")):
        image = _nifti_voxels(path, image)
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return CTVolume(image, name, str(path))


def find_ct_volumes(inputs: Sequence[str | os.PathLike], require_ct: bool = True) -> list[CTVolume]:
    """Read the CT volumes in ``inputs``: DICOM series folders, volume files, or folders of volume files.

    Raises:
        FileNotFoundError / ValueError: naming the input.
    """
    if not inputs:
        raise ValueError("no input given.")
    volumes: list[CTVolume] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith("."))
            if any(_is_dicom(p) for p in files):
                volumes.extend(read_dicom_series(item, require_ct))
            vols = [p for p in files if _suffix(p) in VOLUME_SUFFIXES or p.name.lower().endswith(".nii.gz")]
            volumes.extend(read_ct_volume(p) for p in vols)
            if not any(_is_dicom(p) for p in files) and not vols:
                raise ValueError(f"{item}: the folder holds no DICOM series and no NIfTI/MHA/NRRD volume.")
        elif item.is_file():
            if _is_dicom(item):
                raise ValueError(f"{item}: a single DICOM file; pass the folder of its series.")
            volumes.append(read_ct_volume(item))
        else:
            raise FileNotFoundError(f"{item} does not exist.")
    return volumes


def standardise_ct(
    image,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    window: Sequence[float] = DEFAULT_HU_WINDOW,
):
    """Reorient to RAS (axis 0 → patient right, 1 → anterior, 2 → superior, as nibabel and MONAI's
    ``Orientationd(axcodes="RAS")`` see it), resample linearly to ``spacing`` mm, and clip HU to ``window``.

    Values below air (e.g. -2048 outside the scan's field of view) are set to air *before* interpolation, so they
    never blend into the body's intensities; the area outside the scanned volume is filled with air.
    Returns an int16 SimpleITK image.
    """
    sitk = _sitk()
    lo, hi = (float(w) for w in window)
    image = sitk.Cast(image, sitk.sitkFloat32)
    image = sitk.Maximum(image, HU_AIR)
    image = sitk.DICOMOrient(image, "RAS")
    old_spacing, old_size = image.GetSpacing(), image.GetSize()
    new_spacing = tuple(float(s) for s in spacing)
    new_size = [max(1, round(n * o / s)) for n, o, s in zip(old_size, old_spacing, new_spacing)]
    image = sitk.Resample(
        image, new_size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), new_spacing, image.GetDirection(),
        HU_AIR, sitk.sitkFloat32,
    )  # fmt: skip
    image = sitk.Clamp(image, sitk.sitkFloat32, lo, hi)
    return sitk.Cast(sitk.Round(image), sitk.sitkInt16)


def _check_finite(volume: CTVolume, replace: float | None) -> CTVolume:
    """Refuse a volume with NaN/Inf voxels, or (with ``replace``) set them to ``replace`` HU and report how many."""
    sitk = _sitk()
    voxels = sitk.GetArrayViewFromImage(volume.image)
    bad = int(np.count_nonzero(~np.isfinite(voxels)))
    if not bad:
        return volume
    if replace is None:
        raise ValueError(
            f"{volume.source}: {bad} of {voxels.size} voxels are NaN or infinite; refusing to guess their HU. Fix the "
            "file, or pass --replace-nonfinite HU to set them to a value of your choice."
        )
    fixed = np.where(np.isfinite(voxels), voxels, np.float32(replace)).astype(np.float32)
    image = sitk.GetImageFromArray(fixed)
    image.CopyInformation(volume.image)
    print(f"{volume.source}: replaced {bad} NaN/infinite voxel(s) by {replace:g} HU (--replace-nonfinite)", flush=True)
    return CTVolume(image, volume.name, volume.source)


def prepare_cts(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    window: Sequence[float] = DEFAULT_HU_WINDOW,
    validation: Sequence[str | os.PathLike] = (),
    val_fraction: float = 0.1,
    seed: int = 0,
    require_ct: bool = True,
    overwrite: bool = False,
    labels: Sequence[str | os.PathLike] = (),
    validation_labels: Sequence[str | os.PathLike] = (),
    body_label: int | None = None,
    replace_nonfinite: float | None = None,
    min_size: int = MIN_SIZE,
) -> dict[str, list[dict[str, str]]]:
    """Turn CT volumes into ``output_dir/images/<name>.nii.gz`` (int16 HU, RAS, ``spacing`` mm, clipped to
    ``window``) and ``output_dir/datalist.json`` (MONAI format, paths relative to ``output_dir``).

    With ``labels`` (one label map per volume of ``inputs``, in the order they are found, each on its CT's grid) and
    ``validation_labels`` (the same for ``validation``), every label map is resampled onto its prepared CT with
    nearest-neighbour interpolation (:func:`~monai_msgan.data.labels.prepare_ct_label_map`; unlabelled body voxels
    get ``body_label`` when set) to ``output_dir/labels/<name>.nii.gz``, and listed as ``label``.

    Every input is read and checked before anything is written (non-CT modalities unless not ``require_ct``,
    NaN/Inf voxels unless ``replace_nonfinite`` gives their HU, a volume in both training and validation by path or
    content, sides under ``min_size`` voxels after resampling); existing outputs are kept unless ``overwrite``. The
    outputs are built in a hidden folder beside ``output_dir`` and moved into place at the end, so a failure leaves
    no partial dataset.
    """
    from monai_msgan.data.labels import prepare_ct_label_map, read_label_map

    sitk = _sitk()
    output_dir = Path(output_dir)
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise ValueError(f"spacing must be three positive numbers (mm), got {list(spacing)}.")
    if len(window) != 2 or float(window[0]) >= float(window[1]):
        raise ValueError(f"window must be (low, high) HU with low < high, got {list(window)}.")
    train = find_ct_volumes(inputs, require_ct)
    val = find_ct_volumes(validation, require_ct) if validation else []
    with_labels = bool(labels) or bool(validation_labels)
    if with_labels:
        for what, vols, maps in (("inputs", train, labels), ("validation inputs", val, validation_labels)):
            if len(maps) != len(vols):
                raise ValueError(
                    f"{len(maps)} label map(s) for {len(vols)} volume(s) of the {what} "
                    f"({', '.join(v.source for v in vols[:3])}{', ...' if len(vols) > 3 else ''}): give one per volume."
                )
        for vol, label in [*zip(train, labels), *zip(val, validation_labels)]:
            read_label_map(label, vol.image)  # geometry checked before anything is written
    pairs = list(zip(train, labels)) if with_labels else [(v, None) for v in train]
    val_pairs = list(zip(val, validation_labels)) if with_labels else [(v, None) for v in val]
    if not validation:
        pairs, val_pairs = split_validation(pairs, val_fraction, seed)
    pairs = [(_check_finite(v, replace_nonfinite), lab) for v, lab in pairs]
    val_pairs = [(_check_finite(v, replace_nonfinite), lab) for v, lab in val_pairs]
    train, val = [v for v, _ in pairs], [v for v, _ in val_pairs]
    digests = {id(v): content_digest(sitk.GetArrayViewFromImage(v.image)) for v in [*train, *val]}
    check_no_overlap(
        {f"{v.source} [{v.name}]": digests[id(v)] for v in train},
        {f"{v.source} [{v.name}]": digests[id(v)] for v in val},
    )
    datalist_path = check_writable(output_dir / "datalist.json", overwrite)
    names = unique_names(v.name for v in [*train, *val])
    for name in names:
        check_writable(output_dir / f"images/{name}.nii.gz", overwrite)
        if with_labels:
            check_writable(output_dir / f"labels/{name}.nii.gz", overwrite)
    entries = []
    with staged_folder(output_dir, overwrite) as stage:  # one volume in memory at a time; all or nothing on disk
        for (vol, label), name in zip([*pairs, *val_pairs], names):
            std = standardise_ct(vol.image, spacing, window)
            if min(std.GetSize()) < min_size:
                raise ValueError(
                    f"{vol.source}: volume of {list(std.GetSize())} voxels at {list(spacing)} mm is too small; the "
                    f"minimum side is {min_size} voxels (--min-size)."
                )
            entry = {"image": f"images/{name}.nii.gz"}
            with atomic_path(stage / entry["image"]) as tmp:
                sitk.WriteImage(std, str(tmp), useCompression=True)
            if label is not None:
                entry["label"] = f"labels/{name}.nii.gz"
                prepare_ct_label_map(label, vol.image, std, stage / entry["label"], body_label, overwrite=overwrite)
            entries.append(entry)
        datalist = {"training": entries[: len(pairs)], "validation": entries[len(pairs) :]}
        write_json(datalist, stage / datalist_path.name)
    return datalist
