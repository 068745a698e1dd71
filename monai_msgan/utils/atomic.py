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
"""All-or-nothing writing: a file (or a folder) appears complete under its name, or not at all.

Temporaries live beside their target as hidden names that carry the writing process's id
(``.<name>.<pid>.<random>.tmp<suffix>`` for files, ``.<name>.<pid>.<random>.tmpdir`` for folders), so a later run
can tell the leftovers of a killed process (``kill -9``) from those of a live one and remove them
(:func:`remove_stale_temporaries`). :func:`signals_raise` turns SIGTERM into an exception so that ``finally`` blocks,
and with them the removal of temporaries, run on ``kill`` as they do on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Terminated",
    "atomic_path",
    "atomic_write",
    "check_writable",
    "io_error_message",
    "remove_stale_temporaries",
    "signals_raise",
    "staged_folder",
]

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM inside :func:`signals_raise` (a ``BaseException``, like Ctrl-C's
    ``KeyboardInterrupt``, so that only cleanup code sees it)."""


def io_error_message(error: OSError, path: str | os.PathLike, action: str = "write") -> str:
    """One line saying what could not be done to ``path`` and why (disk full, permission denied, read-only, ...)."""
    reason = _REASONS.get(error.errno or 0, error.strerror or str(error))
    return f"cannot {action} {path}: {reason} ([Errno {error.errno}] {error.strerror or error})."


def _reraise(error: OSError, path: Path, action: str = "write") -> OSError:
    """An ``OSError`` of the same kind (``PermissionError``, ...) and errno whose message names ``path``."""
    out = type(error)(error.errno, io_error_message(error, path, action) + " Nothing was changed there.")
    return out


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite`` is set.

    Raises:
        FileExistsError: naming the file and how to proceed.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; refusing to overwrite it. Choose another output folder or pass overwrite=True "
            "(bundles: --overwrite true)."
        )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:  # a file stands where the folder should be
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write into {folder}: it exists and is not a folder.") from e
    except OSError as e:
        raise _reraise(e, folder, "create the folder") from e


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary name keeps the full suffix (``.nii.gz``) so writers that infer the format from it work, and it
    carries this process's id (see :func:`remove_stale_temporaries`). An ``OSError`` while writing (disk full,
    permission denied, read-only file system) is raised again as the same kind of error with a message naming
    ``path``; the previous file, if any, is left as it was.
    """
    path = Path(path)
    _mkdir(path.parent)
    suffix = "".join(path.suffixes)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as e:
        raise _reraise(e, path) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if getattr(e, "_msgan_described", False):
            raise
        err = _reraise(e, path)
        err._msgan_described = True
        raise err from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically. Returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp(dir|old|\.|$)")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | Callable[[str], Any] | None = None) -> list[Path]:
    """Remove the temporaries that killed processes left in ``folder`` (of ``name`` only, if given; a callable
    selects the final names whose temporaries go, e.g. a compiled pattern's ``fullmatch``).

    Only names this module makes are touched, and only when the process that made them no longer runs, so a
    concurrent writer's temporaries are safe. Returns what was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if m is None or (name is not None and not (name(m["name"]) if callable(name) else m["name"] == name)):
            continue
        if _alive(int(m["pid"])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:  # not ours to remove after all (permissions): leave it, it is hidden and ignored
            continue
    return removed


@contextlib.contextmanager
def staged_folder(output_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder's content in a hidden temporary folder beside it, and move it into place at the end.

    When ``output_dir`` does not exist (or is an empty folder) the finished folder is renamed onto it in one step:
    a failure or a kill leaves nothing under its name. When it exists with content (e.g. the demo's ``raw/``), the
    new files are moved into it one by one (renames, so no data is copied), ``datalist.json`` last; existing files
    are only replaced with ``overwrite``, and files moved in before a failure are taken out again.

    Raises:
        FileExistsError: when a file to be written exists and ``overwrite`` is not set (checked before moving).
        NotADirectoryError / OSError: naming the folder, when it cannot be written.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"output {output_dir} exists and is not a folder.")
    parent = output_dir.parent
    _mkdir(parent)
    remove_stale_temporaries(parent, output_dir.name)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.{os.getpid()}.", suffix=".tmpdir", dir=parent))
    except OSError as e:
        raise _reraise(e, output_dir) from e
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())
        if output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()
        if not output_dir.exists():
            os.rename(stage, output_dir)
            return
        files = sorted((p for p in stage.rglob("*") if p.is_file()), key=lambda p: (p.name == "datalist.json", p))
        for p in files:
            check_writable(output_dir / p.relative_to(stage), overwrite)
        moved: list[Path] = []
        try:
            for p in files:
                target = output_dir / p.relative_to(stage)
                existed = target.exists()
                _mkdir(target.parent)
                os.replace(p, target)
                if not existed:
                    moved.append(target)
        except BaseException:
            for target in moved:
                target.unlink(missing_ok=True)
            raise
    except OSError as e:
        if isinstance(e, FileExistsError):
            raise
        if getattr(e, "_msgan_described", False):  # name the output, not the staging folder it was built in
            err = type(e)(e.errno, (e.strerror or str(e)).replace(str(stage), str(output_dir)))
        else:
            err = _reraise(e, output_dir)
        err._msgan_described = True
        raise err from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within this block, SIGTERM raises :class:`Terminated` in the main thread (as Ctrl-C raises
    ``KeyboardInterrupt``), so that temporaries are removed and the previous state is kept; the previous handler is
    restored afterwards. Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
