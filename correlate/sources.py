"""Input files: expand directories, open compressed streams, hash, and give a head for sniffing."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from .errors import InputError

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: where it is, how the user named it, and how it is compressed."""

    path: Path
    display: str
    explicit: bool = True
    """True when the user named the file itself (not found by walking a directory)."""

    @property
    def compression(self) -> str | None:
        return COMPRESSIONS.get(self.path.suffix.lower())

    @property
    def name(self) -> str:
        """The file name without its compression suffix (``traces.jsonl`` for ``traces.jsonl.gz``)."""
        name = self.path.name
        return name[: -len(self.path.suffix)] if self.compression else name

    def open(self) -> BinaryIO:
        """A buffered binary stream of the decompressed content."""
        try:
            raw = pa.input_stream(str(self.path), compression=self.compression)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.display}: cannot open: {exc}") from exc
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def head(self, size: int = HEAD_BYTES) -> bytes:
        """Up to ``size`` decompressed bytes from the start, for format sniffing."""
        try:
            with self.open() as stream:
                return stream.read(size)
        except (OSError, EOFError, pa.ArrowException) as exc:
            raise InputError(
                f"{self.display}: cannot read ({self.compression} stream?): {exc}"
            ) from exc

    def size(self) -> int:
        return self.path.stat().st_size

    def sha256(self) -> str:
        """SHA-256 of the file as it is on disk (compressed bytes when compressed)."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def iter_lines(source: Source) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its end-of-line) over the decompressed content."""
    try:
        with source.open() as stream:
            for number, line in enumerate(stream, start=1):
                yield number, line.rstrip(b"\r\n")
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read further: {exc}") from exc


def decode_line(raw: bytes) -> tuple[str, str | None]:
    """UTF-8 text of a line; invalid bytes become U+FFFD and the returned note says so."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), "invalid UTF-8 replaced by U+FFFD"


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Files as given and every non-hidden file under each directory, in a stable sorted order.

    The result is sorted by path so that the same set of inputs gives the same answer whatever
    the order on the command line; duplicates are dropped.
    """
    found: dict[Path, Source] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise InputError(f"{given}: no such file or directory")
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    child = Path(root) / name
                    if child.is_file():
                        found.setdefault(child.resolve(), Source(child, str(child), explicit=False))
        elif path.is_file():
            resolved = path.resolve()
            previous = found.get(resolved)
            if previous is None or not previous.explicit:
                found[resolved] = Source(path, str(given), explicit=True)
        else:
            raise InputError(f"{given}: not a regular file or directory")
    return sorted(found.values(), key=lambda s: s.display)
