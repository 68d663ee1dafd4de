"""Input files: expand directories, open compressed streams, hash, and give a head for sniffing.

A ``Source`` may be a byte range of a plain file (``start``, ``end``, ``first_line``: what the
Dask engine hands each worker of a big file) and may name its file by an fsspec URL (``url``:
``s3://``, ``gs://``, ``file://``, ...; fsspec is imported only then).
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from .atomic import sha256_stream
from .errors import InputError

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits on untrusted input; each has a flag to raise it."""

    max_line_bytes: int = 16 * 1024 * 1024
    """A longer line is one rejected row, skipped without being held (``--max-line-bytes``)."""
    max_expansion: float = 200.0
    """Decompressed bytes may exceed the compressed bytes read so far by this factor
    (``--max-expansion``; real logs compress 5-50x, a bomb about 1000x) ..."""
    expansion_floor: int = 64 * 1024 * 1024
    """... and always this many bytes, so small files with repetitive text are fine."""


DEFAULT_LIMITS = Limits()


class _Counted(io.RawIOBase):
    """A raw file that counts the (compressed) bytes read from it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _ExpansionGuard(_Counted):
    """Counts decompressed bytes against the compressed bytes read so far, and stops a
    decompression bomb with a clear message as soon as the ratio shows, whatever the stream's
    shape (many members, one huge line, only newlines): memory and time stay bounded."""

    def __init__(self, raw: Any, compressed: _Counted, display: str, limits: Limits) -> None:
        super().__init__(raw)
        self._compressed = compressed
        self._display = display
        self._limits = limits

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        allowed = max(
            int(self._compressed.count * self._limits.max_expansion), self._limits.expansion_floor
        )
        if self.count > allowed:
            raise InputError(
                f"{self._display}: decompresses to more than {self._limits.max_expansion:g}x the "
                f"{self._compressed.count:,} compressed bytes read so far (past "
                f"{self._limits.expansion_floor:,} bytes); if the file is genuine, raise "
                "--max-expansion"
            )
        return n


class _Slice(io.RawIOBase):
    """Bytes ``[start, end)`` of a seekable binary file (``end`` None: to its end)."""

    def __init__(self, raw: Any, start: int, end: int | None) -> None:
        self._raw = raw
        if start:
            raw.seek(start)
        self._left = None if end is None else max(0, end - start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        if self._left is not None:
            size = min(size, self._left)
        if size <= 0:
            return 0
        into = getattr(self._raw, "readinto", None)
        if into is not None:  # straight into the caller's buffer (no copy)
            n = into(memoryview(buffer)[:size]) or 0
        else:
            data = self._raw.read(size)
            n = len(data)
            buffer[:n] = data
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _fsspec(url: str) -> tuple[Any, str]:
    """(file system, path) for an fsspec URL; fsspec is optional (it comes with dask)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise InputError(
            f"{url}: reading a URL needs fsspec (pip install fsspec, and s3fs/gcsfs for s3/gs)"
        ) from None
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{url}: cannot read this URL ({exc})") from None


def is_url(given: str | os.PathLike[str]) -> bool:
    """Whether a path as given is an fsspec URL (``scheme://...``), not a local path."""
    text = os.fspath(given)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than ``--max-line-bytes``: where, how long, and how it starts."""

    line: int
    length: int
    start: bytes


LONG_LINE_PREFIX = 256
"""Bytes of a too-long line kept to show in its reject."""


def skip_long_line(stream: Any, first: bytes, chunk: int = 1 << 20) -> tuple[int, bool]:
    """Read the rest of a line whose ``first`` bytes were read (no newline in them) without
    holding it: (its length without the end of line, whether the stream ended)."""
    length = len(first)
    while True:
        piece = stream.readline(chunk)
        if not piece:
            return length, True
        if piece.endswith(b"\n"):
            return length + len(piece.rstrip(b"\r\n")), False
        length += len(piece)


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: where it is, how the user named it, and how it is compressed.

    ``start``/``end``/``first_line`` make it a byte range of a plain (uncompressed) file that
    begins at a line start: ``open`` reads only those bytes and lines are numbered from
    ``first_line`` (the file's true number of the range's first line). ``head``, ``size`` and
    ``sha256`` are always the whole file's. ``url``: the file is read through fsspec.
    """

    path: Path
    display: str
    explicit: bool = True
    """True when the user named the file itself (not found by walking a directory)."""
    limits: Limits = DEFAULT_LIMITS
    start: int = 0
    """First byte read (a byte range: the start of a line)."""
    end: int | None = None
    """Byte after the last one read (None: the end of the file)."""
    first_line: int = 1
    """Number of the first line read (the file's line number at ``start``)."""
    url: str | None = None
    """An fsspec URL to read instead of ``path`` (``path`` then holds the URL's path part)."""
    problem: str | None = None
    """Why this entry found by walking a directory cannot be read (a FIFO, a device, a symbolic
    link loop, no permission): it is listed as skipped with this reason, never opened."""
    oversize: list[LongLine] = field(default_factory=list, compare=False, repr=False)
    """Lines longer than ``max_line_bytes`` met while reading (skipped; ``loaders.base``
    counts each as a rejected row)."""

    @property
    def compression(self) -> str | None:
        return COMPRESSIONS.get(self.path.suffix.lower())

    @property
    def name(self) -> str:
        """The file name without its compression suffix (``traces.jsonl`` for ``traces.jsonl.gz``)."""
        name = self.path.name
        return name[: -len(self.path.suffix)] if self.compression else name

    @property
    def is_range(self) -> bool:
        """Whether this is a byte range of its file rather than the whole file."""
        return self.start != 0 or self.end is not None or self.first_line != 1

    def ranged(self, start: int, end: int | None, first_line: int) -> Source:
        """Bytes ``[start, end)`` of this plain file, whose first line is line ``first_line``."""
        if self.compression:
            raise ValueError(f"{self.display}: a compressed file cannot be read by byte ranges")
        if start < 0 or (end is not None and end < start) or first_line < 1:
            raise ValueError(f"invalid byte range [{start}, {end}) from line {first_line}")
        return replace(self, start=start, end=end, first_line=first_line, oversize=[])

    def whole(self) -> Source:
        """The whole file this source (a byte range or not) belongs to."""
        return (
            replace(self, start=0, end=None, first_line=1, oversize=[]) if self.is_range else self
        )

    def _file(self) -> Any:
        """The file on disk (or behind its URL), unbuffered and seekable."""
        if self.url is None:
            return open(self.path, "rb", buffering=0)
        fs, path = _fsspec(self.url)
        return fs.open(path, "rb")

    def open(self) -> io.BufferedReader:
        """A buffered binary stream of the decompressed content (of the range, for a range)."""
        try:
            if self.is_range:
                if self.compression:
                    raise InputError(f"{self.display}: a compressed file has no byte ranges")
                raw: Any = _Slice(self._file(), self.start, self.end)
            elif self.compression:
                counted = _Counted(self._file())
                raw = _ExpansionGuard(
                    pa.input_stream(counted, compression=self.compression),
                    counted,
                    self.display,
                    self.limits,
                )
            elif self.url is not None:
                raw = _Slice(self._file(), 0, None)
            else:
                raw = pa.input_stream(str(self.path))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.display}: cannot open: {exc}") from exc
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def head(self, size: int = HEAD_BYTES) -> bytes:
        """Up to ``size`` decompressed bytes from the start of the file, for format sniffing
        (of the whole file also for a byte range: a loader decides its layout once per file)."""
        try:
            with self.whole().open() as stream:
                return stream.read(size)
        except (OSError, EOFError, pa.ArrowException) as exc:
            raise InputError(
                f"{self.display}: cannot read ({self.compression} stream?): {exc}"
            ) from exc

    def size(self) -> int:
        """The file's size on disk (the whole file's, for a byte range)."""
        if self.problem is not None:
            return 0
        if self.url is None:
            return self.path.stat().st_size
        fs, path = _fsspec(self.url)
        return int(fs.size(path))

    def sha256(self) -> str:
        """SHA-256 of the file as it is on disk (compressed bytes when compressed; the whole
        file, for a byte range)."""
        if self.problem is not None:
            return ""
        with self._file() as fh:
            return sha256_stream(fh)


def iter_lines(source: Source) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its end-of-line) over the decompressed content.

    Lines are numbered from ``source.first_line`` (1 unless the source is a byte range).

    A line longer than the source's ``max_line_bytes`` is never read whole into memory: it is
    skipped and noted in ``source.oversize`` (one rejected row, counted by ``loaders.base``), so
    one long line costs that line, not the file.
    """
    cap = source.limits.max_line_bytes
    try:
        with source.open() as stream:
            number = source.first_line - 1
            while True:
                line = stream.readline(cap + 1)
                if not line:
                    break
                number += 1
                if len(line) > cap and not line.endswith(b"\n"):
                    length, _ = skip_long_line(stream, line)
                    source.oversize.append(LongLine(number, length, line[:LONG_LINE_PREFIX]))
                    continue
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
    the order on the command line; duplicates are dropped. A path given as an fsspec URL
    (``s3://bucket/logs/``, ``file:///mnt/shared/x.jsonl``) is listed through fsspec the same way.
    """
    found: dict[object, Source] = {}
    for given in paths:
        if is_url(given):
            _expand_url(os.fspath(given), limits, found)
            continue
        path = Path(given)
        if not path.exists():
            raise InputError(f"{given}: no such file or directory")
        if path.is_dir():
            _walk(path, limits, found)
        elif path.is_file():
            resolved = path.resolve()
            previous = found.get(resolved)
            if previous is None or not previous.explicit:
                found[resolved] = Source(path, str(given), explicit=True, limits=limits)
        else:
            raise InputError(f"{given}: not a regular file or directory")
    return sorted(found.values(), key=lambda s: s.display)


def _walk(top: Path, limits: Limits, found: dict[object, Source]) -> None:
    """Every non-hidden entry under ``top``: regular files as sources, and anything that cannot
    be read (an unreadable directory, a FIFO, a device, a socket, a broken or looping symbolic
    link, a file without read permission) as a source with its ``problem``, to be listed as
    skipped. Never opens anything, so a FIFO cannot block the walk; symbolic links to
    directories are not followed (listed instead), so a loop cannot either."""

    def unreadable(error: OSError) -> None:
        where = Path(error.filename) if error.filename else top
        found.setdefault(
            ("problem", str(where)),
            Source(
                where,
                str(where),
                explicit=False,
                limits=limits,
                problem=f"directory not read: {error.strerror or error}",
            ),
        )

    for root, dirs, files in os.walk(top, onerror=unreadable):
        here = Path(root)
        linked = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in linked)
        for name in sorted([*files, *linked]):
            if name.startswith("."):
                continue
            child = here / name
            problem = _unreadable_entry(child)
            key: object = ("problem", str(child)) if problem else child.resolve()
            found.setdefault(
                key, Source(child, str(child), explicit=False, limits=limits, problem=problem)
            )


def _unreadable_entry(path: Path) -> str | None:
    """Why ``path`` (found by walking) is not read, or None for a readable regular file."""
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if path.is_symlink():
            return "a broken symbolic link"
        return f"cannot be examined: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return "a symbolic link to a directory, not followed (name it to read it)"
    if stat.S_ISFIFO(info.st_mode):
        return "a FIFO (named pipe), not read"
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return "a device, not read"
    if stat.S_ISSOCK(info.st_mode):
        return "a socket, not read"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _expand_url(given: str, limits: Limits, found: dict[object, Source]) -> None:
    """``expand_paths`` for one URL: the file, or every non-hidden file under the prefix."""
    fs, root = _fsspec(given)
    try:
        if fs.isdir(root):
            base = given.rstrip("/")
            prefix = root.rstrip("/") + "/"
            for child in sorted(fs.find(root)):
                relative = child[len(prefix) :] if child.startswith(prefix) else child
                if any(part.startswith(".") for part in relative.split("/")):
                    continue
                url = fs.unstrip_protocol(child)
                found.setdefault(
                    ("url", url),
                    Source(
                        Path(child), f"{base}/{relative}", explicit=False, limits=limits, url=url
                    ),
                )
            return
        if not fs.isfile(root):
            raise InputError(f"{given}: no such file or directory")
    except OSError as exc:
        raise InputError(f"{given}: cannot list: {exc}") from exc
    key = ("url", fs.unstrip_protocol(root))
    previous = found.get(key)
    if previous is None or not previous.explicit:
        found[key] = Source(Path(root), given, explicit=True, limits=limits, url=given)
