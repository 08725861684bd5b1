"""The engine-less image build's pure steps: which wheels fit the image, what slimming keeps, and
when a build counts as failed. The build itself (`make image`) needs root and minutes."""

from __future__ import annotations

import pathlib

from image import build


def test_platforms_cover_the_older_manylinux_tags_wheels_carry() -> None:
    tags = build.platforms("x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags


def test_slim_empties_caches_and_docs_but_keeps_copyrights(tmp_path: pathlib.Path) -> None:
    root = tmp_path
    for relative in ("var/lib/apt/lists/partial", "var/cache/apt/archives", "usr/share/doc/zstd/examples", "tmp"):
        (root / relative).mkdir(parents=True)
    (root / "var/lib/apt/lists/deb.debian.org_Packages").write_text("x")
    (root / "var/cache/apt/archives/python3.deb").write_text("x")
    (root / "usr/share/doc/zstd/copyright").write_text("BSD")
    (root / "usr/share/doc/zstd/changelog.gz").write_text("x")
    (root / "usr/share/doc/zstd/examples/a.c").write_text("x")
    (root / "usr/share/doc/empty").mkdir()
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").write_text("nameserver 10.0.0.1")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("Package: python3")
    (root / "var/lib/dpkg/status-old").write_text("x")

    build.slim(root)

    assert not any((root / "var/lib/apt/lists").iterdir())
    assert (root / "var/lib/apt/lists").is_dir() and not any((root / "var/cache/apt").iterdir())
    assert sorted(p.relative_to(root).as_posix() for p in (root / "usr/share/doc").rglob("*")) == [
        "usr/share/doc/zstd",
        "usr/share/doc/zstd/copyright",
    ]
    assert not (root / "etc/resolv.conf").exists()
    assert (root / "var/lib/dpkg/status").exists() and not (root / "var/lib/dpkg/status-old").exists()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_a_build_fails_on_any_failed_verdict() -> None:
    report: dict[str, object] = {
        "manifest": "sha256:m",
        "smoke": {"ok": True},
        "check": {
            "skopeo": {"digest": "sha256:m", "config_matches_dockerfile": True},
            "umoci": {"smoke": {"ok": False}},
        },
    }
    assert build.passed(report) == {"smoke test": True, "skopeo": True, "umoci": False}
    report["check"] = {"skopeo": {"digest": "sha256:other", "config_matches_dockerfile": True}, "umoci": "absent"}
    assert build.passed(report) == {"smoke test": True, "skopeo": False}
