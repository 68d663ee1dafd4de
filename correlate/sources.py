"""Input files: expand directories, open compressed streams, hash, and give a head for sniffing."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from .errors import InputError

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits on untrusted input; each has a flag to raise it."""

    max_line_bytes: int = 16 * 1024 * 1024
    """A longer line stops the load of its file (``--max-line-bytes``)."""
    max_expansion: float = 1000.0
    """Decompressed bytes may exceed compressed bytes by this factor (``--max-expansion``) ..."""
    expansion_floor: int = 64 * 1024 * 1024
    """... and always this many bytes, so small files with repetitive text are fine."""


DEFAULT_LIMITS = Limits()


class _ExpansionGuard(io.RawIOBase):
    """Counts decompressed bytes and stops a decompression bomb with a clear message."""

    def __init__(self, raw: Any, allowed: int, display: str, limits: Limits) -> None:
        self._raw = raw
        self._allowed = allowed
        self._display = display
        self._limits = limits
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._seen += n
        if self._seen > self._allowed:
            raise InputError(
                f"{self._display}: decompresses to more than {self._allowed:,} bytes "
                f"({self._limits.max_expansion:g}x its size, at least {self._limits.expansion_floor:,}); "
                "if the file is genuine, raise --max-expansion"
            )
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: where it is, how the user named it, and how it is compressed."""

    path: Path
    display: str
    explicit: bool = True
    """True when the user named the file itself (not found by walking a directory)."""
    limits: Limits = DEFAULT_LIMITS

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
        if self.compression:
            allowed = max(int(self.size() * self.limits.max_expansion), self.limits.expansion_floor)
            raw = _ExpansionGuard(raw, allowed, self.display, self.limits)
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
    """Yield (1-based line number, line without its end-of-line) over the decompressed content.

    A line longer than the source's ``max_line_bytes`` stops the file with a clear message: it is
    never read whole into memory.
    """
    cap = source.limits.max_line_bytes
    try:
        with source.open() as stream:
            number = 0
            while True:
                line = stream.readline(cap + 1)
                if not line:
                    break
                number += 1
                if len(line) > cap and not line.endswith(b"\n"):
                    raise InputError(
                        f"{source.display}:{number}: a line longer than {cap:,} bytes; "
                        "if the file is genuine, raise --max-line-bytes"
                    )
                yield number, line.rstrip(b"\r\n")
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.display}: cannot read further: {exc}") from exc


def decode_line(raw: bytes) -> tuple[str, str | None]:
    """UTF-8 text of a line; invalid bytes become U+FFFD and the returned note says so."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), "invalid UTF-8 replaced by U+FFFD"


def expand_paths(
    paths: Sequence[str | os.PathLike[str]], limits: Limits = DEFAULT_LIMITS
) -> list[Source]:
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
                        found.setdefault(
                            child.resolve(),
                            Source(child, str(child), explicit=False, limits=limits),
                        )
        elif path.is_file():
            resolved = path.resolve()
            previous = found.get(resolved)
            if previous is None or not previous.explicit:
                found[resolved] = Source(path, str(given), explicit=True, limits=limits)
        else:
            raise InputError(f"{given}: not a regular file or directory")
    return sorted(found.values(), key=lambda s: s.display)
