"""Compressed snapshots: each codec stores its own format (checked by magic bytes), takes less room
on compressible data, verifies, restores byte for byte, and keeps the same root hash as an
uncompressed snapshot of the same files; levels 0-9 and nothing else."""

from __future__ import annotations

import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import compression, errors, verify, volume

MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_each_codec_stores_verifies_and_restores(populated: pathlib.Path, codec: str) -> None:
    original = jvs_helpers.tree(populated / "main")
    d = jvs_helpers.snapshot(populated, codec=codec, level=6)
    stored = (populated / ".jvs" / "snapshots" / d["snapshotID"] / "payload" / "data" / "train.csv").read_bytes()
    if codec == "none":
        assert stored == (populated / "main" / "data" / "train.csv").read_bytes()
        assert d["storedSize"] == d["size"]
    else:
        assert stored.startswith(MAGIC[codec])
        assert d["storedSize"] < d["size"]  # the CSV compresses; random bytes barely grow
    assert d["compression"] == {"type": codec, "level": 6}
    with volume.opened(populated, exclusive=False) as lay:
        assert verify.verify(lay, d["snapshotID"]).state == verify.VERIFIED
    jvs_helpers.write(populated / "main", {"data/train.csv": "gone"})
    jvs_helpers.restore_to(populated, d["snapshotID"])
    assert jvs_helpers.tree(populated / "main") == original


def test_the_root_hash_does_not_depend_on_compression(populated: pathlib.Path) -> None:
    hashes = {codec: jvs_helpers.snapshot(populated, codec=codec)["payloadRootHash"] for codec in compression.CODECS}
    assert len(set(hashes.values())) == 1


def test_a_change_of_codec_copies_instead_of_linking(populated: pathlib.Path) -> None:
    jvs_helpers.snapshot(populated, codec="none")
    zstd = jvs_helpers.snapshot(populated, codec="zstd")
    assert zstd["linkedFiles"] == 0
    again = jvs_helpers.snapshot(populated, codec="zstd", level=1)  # another level reads the same way
    assert again["linkedFiles"] == again["fileCount"]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_higher_levels_store_smaller(root: pathlib.Path, codec: str) -> None:
    words = " ".join(f"token{i % 997} value{i % 13}" for i in range(60_000))
    jvs_helpers.write(root / "main", {"text.txt": words})
    fast = jvs_helpers.snapshot(root, codec=codec, level=1)["storedSize"]
    small = jvs_helpers.snapshot(root, codec=codec, level=9)["storedSize"]
    assert small < fast < len(words)


def test_gzip_level_zero_stores_without_compressing(root: pathlib.Path) -> None:
    jvs_helpers.write(root / "main", {"text.txt": "a" * 100_000})
    d = jvs_helpers.snapshot(root, codec="gzip", level=0)
    assert d["storedSize"] > 100_000  # stored blocks plus the gzip framing


@pytest.mark.parametrize(("codec", "level", "message"), [("lz4", 6, "unknown compression"), ("gzip", 10, "0-9"),
                                                         ("zstd", -1, "0-9")])  # fmt: skip
def test_unknown_codecs_and_levels_are_refused(populated: pathlib.Path, codec: str, level: int, message: str) -> None:
    with pytest.raises(errors.InvalidInputError, match=message):
        jvs_helpers.snapshot(populated, codec=codec, level=level)


def test_zstd_levels_cover_its_scale_in_order() -> None:
    levels = [compression.ZSTD_LEVELS[i] for i in range(10)]
    assert levels == sorted(levels) and levels[1] == 1 and levels[9] == 19 and levels[0] < 1
