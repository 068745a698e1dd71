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
"""More real chest CTs from PyPI: the two lung test cases in pyradiomics' source distribution.

pyradiomics 3.1.0's sdist (``pyradiomics-3.1.0.tar.gz`` on PyPI, 34 MB) holds ``data/lung1_image.nrrd`` (512×512×48,
0.570×0.570×5 mm, heart to neck) and ``data/lung2_image.nrrd`` (512×512×61, 0.627×0.627×5 mm, upper abdomen to
neck), two chest CTs of two more patients in HU. Its wheels do not hold them, and pip cannot download the sdist
without building it, so :func:`fetch_pyradiomics_cts` downloads the archive itself from PyPI's file host (once, at
data-preparation time, never while training or generating), checks it against the SHA-256 that PyPI publishes,
and extracts the two members by name. A copy of the archive fetched elsewhere can be given instead (``archive``),
for machines without access to PyPI.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import urllib.request
from pathlib import Path

from monai_msgan.utils.atomic import atomic_path

__all__ = ["PYRADIOMICS_SDIST", "default_cache_dir", "fetch_pyradiomics_cts", "sha256_of"]

#: Where the archive lives on PyPI, its SHA-256 (as PyPI's simple index lists it) and the CT members it holds.
PYRADIOMICS_SDIST = {
    "name": "pyradiomics-3.1.0.tar.gz",
    "url": "https://files.pythonhosted.org/packages/03/c1/20fc2c50ab1e3304da36d866042a1905a2b05a1431ece35448ab6b4578f2/"
    "pyradiomics-3.1.0.tar.gz",
    "sha256": "24722c962a6bbd09bc39c1c67dbffe92435f9692a421fabaae8a6b4511eb48e4",
    "members": ("pyradiomics-3.1.0/data/lung1_image.nrrd", "pyradiomics-3.1.0/data/lung2_image.nrrd"),
}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/monai_msgan`` (``~/.cache/monai_msgan`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "monai_msgan"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_digest(path: Path, sha256: str, what: str) -> None:
    """Raise naming ``what`` (the file or URL as the user knows it) when ``path``'s digest is not ``sha256``."""
    found = sha256_of(path)
    if found != sha256:
        raise ValueError(
            f"{what} has SHA-256 {found}, expected {sha256}: it is not {PYRADIOMICS_SDIST['name']} as "
            "published on PyPI (a damaged or different file)."
        )


def _download(url: str, target: Path, sha256: str, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check its digest, then rename it into place."""
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
        except OSError as e:  # URLError, timeouts and HTTP errors are OSErrors
            raise ConnectionError(
                f"cannot download {url}: {e}. Download {PYRADIOMICS_SDIST['name']} from "
                "https://pypi.org/project/pyradiomics/3.1.0/#files on a machine with access to PyPI and pass it "
                "with --pyradiomics_sdist (Python: archive=...)."
            ) from e
        _check_digest(tmp, sha256, f"the download of {url}")


def fetch_pyradiomics_cts(
    cache_dir: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
    url: str = PYRADIOMICS_SDIST["url"],
    sha256: str = PYRADIOMICS_SDIST["sha256"],
    members: tuple[str, ...] = PYRADIOMICS_SDIST["members"],
    timeout: float = 120.0,
) -> list[Path]:
    """The two chest CTs of pyradiomics 3.1.0's sdist, as NRRD files in ``cache_dir``.

    Args:
        cache_dir: where the archive and the extracted CTs are kept (default :func:`default_cache_dir`). Files
            already there are reused when their digests match those recorded at extraction; damaged ones are
            extracted again.
        archive: a local copy of the archive to use instead of downloading it; it is checked against ``sha256``.
        url: where to download the archive from (PyPI's file host; a ``file://`` URL works too).
        sha256: the archive's expected SHA-256.
        members: the archive members to extract (each to ``cache_dir/<file name>``).
        timeout: seconds to wait for the download to answer.

    Returns:
        the extracted files, in the order of ``members``.

    Raises:
        ValueError: when the archive's digest differs, naming the file, or a member is missing from it.
        ConnectionError: when the download fails, saying how to supply the archive by hand.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    outputs = [cache / Path(m).name for m in members]
    stamp = cache / f"{Path(url).name}.json"  # the archive's digest and those of the files extracted from it
    if _extracted(stamp, sha256, outputs):
        return outputs
    if archive is not None:
        source = Path(archive)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such file (the pyradiomics sdist to read the CTs from).")
        _check_digest(source, sha256, f"the archive {source}")
    else:
        source = cache / Path(url).name
        if source.is_file() and sha256_of(source) != sha256:
            source.unlink()  # a damaged earlier download: fetch it again
        if not source.is_file():
            _download(url, source, sha256, timeout)
    try:
        with tarfile.open(source, "r:*") as tar:
            for member, out in zip(members, outputs):
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise ValueError(f"{source} holds no member {member}.") from None
                if not info.isfile():
                    raise ValueError(f"{source}: member {member} is not a regular file.")
                with tar.extractfile(info) as src, atomic_path(out) as tmp, open(tmp, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
    except tarfile.TarError as e:
        raise ValueError(f"{source} is not a readable .tar.gz archive: {e}.") from e
    with atomic_path(stamp) as tmp:
        tmp.write_text(json.dumps({"archive_sha256": sha256, "files": {p.name: sha256_of(p) for p in outputs}}))
    return outputs


def _extracted(stamp: Path, sha256: str, outputs: list[Path]) -> bool:
    """Whether ``outputs`` were extracted from the archive of digest ``sha256`` and are unchanged since."""
    try:
        record = json.loads(stamp.read_text())
        return record["archive_sha256"] == sha256 and all(
            p.is_file() and record["files"].get(p.name) == sha256_of(p) for p in outputs
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
