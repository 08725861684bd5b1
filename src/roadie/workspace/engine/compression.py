"""Storing a snapshot's files compressed (`gzip`, `zstd`) or as they are (`none`).

The content hash is always taken over the uncompressed bytes while they stream through, so a
file is read once, and the root hash does not depend on how the snapshot is stored.

Levels 0-9 are the API's (gzip's own scale). gzip takes them as they are: 0 stores, 1 is fastest,
9 smallest. zstd's scale is 1-19 (and negative "fast" levels); 0-9 are spread over it so that each
step still trades speed for size: 0 → -5 (fastest, like gzip's "store" it barely compresses),
1-6 → 1-6, 7 → 9, 8 → 13, 9 → 19.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from typing import Literal, Protocol

import zstandard

from roadie.workspace.engine import errors, tree

Codec = Literal["none", "gzip", "zstd"]
CODECS: tuple[Codec, ...] = ("none", "gzip", "zstd")
DEFAULT_LEVEL = 6
ZSTD_LEVELS = {0: -5, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 9, 8: 13, 9: 19}


def check(codec: str, level: int) -> tuple[Codec, int]:
    if codec not in CODECS:
        raise errors.InvalidInputError(f"unknown compression {codec!r}: use gzip, zstd or none")
    if not 0 <= level <= 9:
        raise errors.InvalidInputError(f"compression level {level} is outside 0-9")
    return codec, level


class _Stream(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _ZstdStream:
    def __init__(self, level: int) -> None:
        self._obj = zstandard.ZstdCompressor(level=ZSTD_LEVELS[level]).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


def _compressor(codec: Codec, level: int) -> _Stream:
    if codec == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: the gzip container
    return _ZstdStream(level)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def compress_fd(src: int, dst: int, codec: Codec, level: int) -> tuple[str, int, int]:
    """Compress what is left on `src` into `dst`; (sha256 of the raw bytes, raw size, stored size)."""
    digest = hashlib.sha256()
    stream = _compressor(codec, level)
    buf = tree.buffer()
    view = memoryview(buf)
    raw = stored = 0
    while True:
        count = os.readv(src, [buf])
        if not count:
            break
        chunk = view[:count]
        digest.update(chunk)
        raw += count
        out = stream.compress(bytes(chunk))
        if out:
            _write_all(dst, out)
            stored += len(out)
    out = stream.flush()
    _write_all(dst, out)
    return digest.hexdigest(), raw, stored + len(out)


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, /) -> bytes: ...


def _decompressor(codec: str) -> _Decoder:
    if codec == "gzip":
        return zlib.decompressobj(31)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    raise errors.CorruptError(f"unknown stored compression {codec!r}")


def decompress_fd(src: int, dst: int | None, codec: str) -> tuple[str, int]:
    """Decompress `src` into `dst` (or only hash it when `dst` is None); (sha256, raw size)."""
    digest = hashlib.sha256()
    decoder = _decompressor(codec)
    buf = tree.buffer()
    view = memoryview(buf)
    raw = 0
    try:
        while True:
            count = os.readv(src, [buf])
            if not count:
                break
            out = decoder.decompress(bytes(view[:count]))
            if out:
                digest.update(out)
                raw += len(out)
                if dst is not None:
                    _write_all(dst, out)
    except (zlib.error, zstandard.ZstdError) as error:
        raise errors.CorruptError(f"stored {codec} data cannot be decompressed: {error}") from error
    if not decoder.eof:
        raise errors.CorruptError(f"stored {codec} data is truncated")
    return digest.hexdigest(), raw
