"""Write files so that an interrupted run never leaves a partial one, alone or as a set.

* ``atomic_path``: one file, written to a temporary name beside it and renamed over it.
* ``file_set``: several files that belong together (a report and its sibling tables). POSIX has
  no rename of several files at once, so the set carries its own commit record: every member is
  written and synced in a temporary directory beside the target, the previous set's manifest
  (``OUTPUT.files.json``) is removed, each member is renamed into place, the files of an earlier
  set that this one does not produce are removed, and the new manifest, naming each member with
  its size and SHA-256, is renamed into place last. So a set is complete exactly when its
  manifest is there and every member matches it (``check_file_set``); a kill at any step leaves
  either the previous complete set, or a set without a manifest, which ``check_file_set`` (and
  ``correlate verify OUTPUT``) calls incomplete. Writing the same set again removes what a killed
  write left (its temporary directory).
* ``refuse_overwrite``: outputs never replace the evidence (an input file or a case's own files).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OptionError

SET_FORMAT = "correlate-file-set"
SET_VERSION = 1
SET_SUFFIX = ".files.json"
"""A set's manifest is ``OUTPUT.files.json`` beside its main file ``OUTPUT``."""
SET_STAGING = ".set.tmp"
"""Suffix of the temporary directory a set is written in (``.OUTPUT.<random>.set.tmp``)."""


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh: BinaryIO) -> str:
    """SHA-256 of what is left to read of an open binary file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed.

    With ``durable`` the file is synced before the rename and the directory after it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(target.parent)


# --- outputs never replace the evidence --------------------------------------------------------


class OutputConflict(OptionError):
    """An output would replace (or remove) an input or a case's own file: a usage error, exit 2."""


def refuse_overwrite(
    outputs: Iterable[str | os.PathLike[str]],
    protected: Iterable[tuple[str | os.PathLike[str], str]],
    *,
    option: str = "-o",
) -> None:
    """Raise OutputConflict when one of ``outputs`` is, or lies inside, a protected path.

    ``protected`` pairs a path with what it is ("an input of this analysis"). An output matches
    when it is the same file (same device and inode: through symbolic or hard links too), the
    same path once resolved (even if it does not exist yet), or inside a protected directory.
    """
    by_inode: dict[tuple[int, int], tuple[Path, str]] = {}
    by_path: dict[Path, tuple[Path, str]] = {}
    directories: list[tuple[Path, Path, str]] = []
    for item, what in protected:
        path = Path(item)
        resolved = path.resolve()
        by_path.setdefault(resolved, (path, what))
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if os.path.isdir(path):
            directories.append((resolved, path, what))
        else:
            by_inode.setdefault((stat.st_dev, stat.st_ino), (path, what))
    for item in outputs:
        out = Path(item)
        resolved = out.resolve()
        hit = by_path.get(resolved)
        if hit is None:
            with contextlib.suppress(OSError):
                stat = os.stat(out)
                hit = by_inode.get((stat.st_dev, stat.st_ino))
        if hit is None:
            hit = next(
                ((path, what) for root, path, what in directories if resolved.is_relative_to(root)),
                None,
            )
        if hit is not None:
            path, what = hit
            same = "" if Path(path) == out else f" ({path})"
            raise OutputConflict(
                f"{option} would write {out}, which is {what}{same}; outputs never replace the "
                "evidence: choose another file name (nothing was written)"
            )


# --- several files as one set ----------------------------------------------------------------


def set_manifest_path(main: str | os.PathLike[str]) -> Path:
    """The manifest of the set whose main file is ``main``: ``main`` + ``.files.json``."""
    path = Path(main)
    return path.with_name(path.name + SET_SUFFIX)


def _staging_dirs(parent: Path, main_name: str) -> list[Path]:
    pattern = f".{glob.escape(main_name)}.*{SET_STAGING}"
    return sorted(p for p in parent.glob(pattern) if p.is_dir())


@contextmanager
def file_set(
    members: Mapping[str, str | os.PathLike[str]],
    *,
    kind: str,
    main: str,
    stale: Iterable[str | os.PathLike[str]] = (),
    protected: Iterable[tuple[str | os.PathLike[str], str]] = (),
) -> Iterator[dict[str, Path]]:
    """Write ``members`` (name -> final path, all in one directory) as one set.

    Yields a temporary path for each member, to be written by the caller; when the block ends
    without an exception the set is committed (see the module's docstring), otherwise nothing
    changes on disk. ``main`` names the member whose file names the set. ``stale`` lists files
    an earlier set of this name may have held: those the new set does not produce are removed.
    ``protected`` paths are refused before anything is written (``refuse_overwrite``).
    """
    finals = {name: Path(path) for name, path in members.items()}
    main_path = finals[main]
    parent = main_path.parent
    if any(p.parent != parent for p in finals.values()):
        raise ValueError("the files of a set must share one directory")
    if len({p.name for p in finals.values()}) != len(finals):
        raise ValueError("two files of the set have the same name")
    if main_path.name.endswith(SET_SUFFIX):
        raise OptionError(
            f"-o {main_path}: a name ending in {SET_SUFFIX} is the manifest of a set of files; "
            "choose another name"
        )
    manifest = set_manifest_path(main_path)
    removed = [Path(p) for p in stale if Path(p).name not in {f.name for f in finals.values()}]
    refuse_overwrite([*finals.values(), manifest, *removed], protected)
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in _staging_dirs(parent, main_path.name):  # a killed write of this set
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{main_path.name}.", suffix=SET_STAGING, dir=parent))
    temps = {name: staging / path.name for name, path in finals.items()}
    try:
        yield temps
        _commit_set(staging, finals, temps, manifest, kind, main, removed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _commit_set(
    staging: Path,
    finals: dict[str, Path],
    temps: dict[str, Path],
    manifest: Path,
    kind: str,
    main: str,
    removed: list[Path],
) -> None:
    """Move a written set into place; its manifest last (everything that can fail first)."""
    mode = 0o666 & ~_umask()
    files: dict[str, dict[str, Any]] = {}
    for name, tmp in temps.items():
        if not tmp.is_file():
            raise ValueError(f"the {name} file of the set was not written")
        os.chmod(tmp, mode)
        fsync_path(tmp)
        files[name] = {
            "file": finals[name].name,
            "bytes": tmp.stat().st_size,
            "sha256": sha256_file(tmp),
        }
    record = {
        "format": SET_FORMAT,
        "version": SET_VERSION,
        "kind": kind,
        "main": finals[main].name,
        "files": files,
        "absent": sorted(p.name for p in removed),
    }
    staged = staging / manifest.name
    staged.write_bytes(
        (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()
    )
    os.chmod(staged, mode)
    fsync_path(staged)
    fsync_path(staging)
    # The commit. From here until the manifest is back, a reader that checks sees no complete set.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(manifest)
    for name, final in finals.items():
        os.replace(temps[name], final)
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    fsync_path(manifest.parent)
    os.replace(staged, manifest)
    fsync_path(manifest.parent)


def check_file_set(path: str | os.PathLike[str]) -> tuple[list[str], int]:
    """Problems with a set of files (one sentence each) and how many of its files were checked.

    ``path`` is the set's main file or its manifest. A set is complete when its manifest is
    there, every member it names matches it (size, SHA-256), no file it says the set does not
    produce is there, and no interrupted write left its temporary directory.
    """
    given = Path(path)
    manifest = given if given.name.endswith(SET_SUFFIX) else set_manifest_path(given)
    parent = manifest.parent
    main_name = manifest.name[: -len(SET_SUFFIX)]
    problems: list[str] = []
    leftovers = _staging_dirs(parent, main_name)
    if not manifest.is_file():
        problems.append(
            f"{manifest.name} is missing: {main_name} is not a complete set of files (a write was "
            "interrupted, or it was not written as a set by this correlate); write it again."
        )
    checked = 0
    if manifest.is_file():
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
            if record.get("format") != SET_FORMAT:
                raise ValueError("not a set manifest")
            files = dict(record["files"])
            absent = list(record.get("absent", []))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return [f"{manifest.name} is not a readable set manifest ({exc})."], 0
        for name, entry in sorted(files.items()):
            member = parent / Path(str(entry.get("file", ""))).name
            if not member.is_file():
                problems.append(f"{member.name} ({name}) is missing from the set.")
                continue
            checked += 1
            size = member.stat().st_size
            digest = sha256_file(member)
            if digest != entry.get("sha256") or size != entry.get("bytes"):
                problems.append(
                    f"{member.name} ({name}) has SHA-256 {digest[:12]}… and {size} bytes, the set "
                    f"recorded {str(entry.get('sha256'))[:12]}… and {entry.get('bytes')} bytes: "
                    "it was changed, or a write of the set was interrupted."
                )
        for name in absent:
            if (parent / Path(str(name)).name).exists():
                problems.append(
                    f"{Path(str(name)).name} is not part of the set (left from an earlier one)."
                )
    for leftover in leftovers:
        problems.append(
            f"{leftover.name} was left by an interrupted write of {main_name}; writing the set "
            "again removes it."
        )
    return problems, checked


__all__ = [
    "SET_SUFFIX",
    "OutputConflict",
    "atomic_path",
    "check_file_set",
    "file_set",
    "fsync_path",
    "refuse_overwrite",
    "set_manifest_path",
    "sha256_file",
]
