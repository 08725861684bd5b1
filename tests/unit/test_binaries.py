"""Binary resolution for the local control plane, without a cluster and without Go.

A wrong answer here is expensive either way: trusting a half-built cache starts a cluster that
dies on a missing binary, and distrusting a good one costs a five-minute rebuild. So each branch
of `binaries.resolve` (the user's own folder, a cache hit, a cache miss, an untrusted cache) is
pinned with fake executables in a temporary folder and a fake `build` that records its calls.
The pure helpers that write the Go build's inputs are checked on their own, since a mistake in
them only shows up minutes into a cold build.
"""

from __future__ import annotations

import pathlib

import pytest

from roadie.devcluster import binaries, versions

PINS = versions.Versions(kubernetes="1.36.3", etcd="3.6.16", kwok="0.8.0")


def fill(folder: pathlib.Path, names: tuple[str, ...] = versions.BINARIES, *, marker: bool = True) -> None:
    """Fake binaries: executable files that are never run."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    if marker:
        (folder / binaries.COMPLETE_MARKER).write_text("{}\n")


class RecordingBuild:
    """A stand-in for `build_all` that remembers its calls and fills (or not) the target."""

    def __init__(self, *, fills: bool = True) -> None:
        self.fills = fills
        self.calls: list[tuple[pathlib.Path, versions.Versions]] = []

    def __call__(self, target: pathlib.Path, pins: versions.Versions, report: binaries.Reporter) -> None:
        self.calls.append((target, pins))
        if self.fills:
            fill(target)


def never_build(target: pathlib.Path, pins: versions.Versions, report: binaries.Reporter) -> None:
    pytest.fail(f"build was called for {target}, but the binaries were already there")


def home_env(tmp_path: pathlib.Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home")}


def test_env_folder_with_every_binary_is_used(tmp_path: pathlib.Path) -> None:
    own = tmp_path / "own-bin"
    fill(own, marker=False)  # the user's folder needs no marker: it is theirs to vouch for
    env = {**home_env(tmp_path), binaries.ENV_BIN_DIR: str(own)}

    assert binaries.resolve(pins=PINS, env=env, build=never_build, report=lambda _: None) == own


def test_env_folder_missing_a_binary_names_it(tmp_path: pathlib.Path) -> None:
    own = tmp_path / "own-bin"
    fill(own, tuple(name for name in versions.BINARIES if name not in ("kwok", "kube-scheduler")))
    env = {**home_env(tmp_path), binaries.ENV_BIN_DIR: str(own)}

    with pytest.raises(binaries.BinariesError) as raised:
        binaries.resolve(pins=PINS, env=env, build=never_build, report=lambda _: None)

    message = str(raised.value)
    assert binaries.ENV_BIN_DIR in message
    assert "kwok" in message and "kube-scheduler" in message
    assert "etcd" not in message.split("lacks", 1)[1]


def test_env_folder_with_a_non_executable_file_is_incomplete(tmp_path: pathlib.Path) -> None:
    own = tmp_path / "own-bin"
    fill(own)
    (own / "etcd").chmod(0o644)

    assert binaries.missing_in(own) == ["etcd"]
    with pytest.raises(binaries.BinariesError, match="etcd"):
        binaries.resolve(pins=PINS, env={binaries.ENV_BIN_DIR: str(own)}, build=never_build, report=lambda _: None)


def test_cache_root_follows_home_and_xdg(tmp_path: pathlib.Path) -> None:
    assert binaries.cache_root(home_env(tmp_path)) == tmp_path / "home" / ".cache" / "roadie" / "k8s"
    xdg = {**home_env(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert binaries.cache_root(xdg) == tmp_path / "xdg" / "roadie" / "k8s"


def test_cache_hit_returns_without_building(tmp_path: pathlib.Path) -> None:
    env = home_env(tmp_path)
    cached = binaries.cache_root(env) / PINS.key
    fill(cached)

    assert binaries.resolve(pins=PINS, env=env, build=never_build, report=lambda _: None) == cached


def test_cache_miss_builds_into_the_keyed_folder(tmp_path: pathlib.Path) -> None:
    env = {**home_env(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    build = RecordingBuild()

    found = binaries.resolve(pins=PINS, env=env, build=build, report=lambda _: None)

    expected = tmp_path / "xdg" / "roadie" / "k8s" / PINS.key
    assert build.calls == [(expected, PINS)]
    assert found == expected


def test_other_pins_miss_the_cache_of_these(tmp_path: pathlib.Path) -> None:
    env = home_env(tmp_path)
    fill(binaries.cache_root(env) / PINS.key)
    bumped = versions.Versions(kubernetes="1.36.4", etcd=PINS.etcd, kwok=PINS.kwok)
    build = RecordingBuild()

    binaries.resolve(pins=bumped, env=env, build=build, report=lambda _: None)

    assert [target.name for target, _ in build.calls] == [bumped.key]
    assert bumped.key != PINS.key


def test_cache_folder_without_marker_is_not_trusted(tmp_path: pathlib.Path) -> None:
    env = home_env(tmp_path)
    cached = binaries.cache_root(env) / PINS.key
    fill(cached, marker=False)  # every binary there, as an interrupted rename could never leave it
    build = RecordingBuild()

    binaries.resolve(pins=PINS, env=env, build=build, report=lambda _: None)

    assert build.calls == [(cached, PINS)]


def test_cache_folder_with_marker_but_missing_binary_is_not_trusted(tmp_path: pathlib.Path) -> None:
    env = home_env(tmp_path)
    cached = binaries.cache_root(env) / PINS.key
    fill(cached)
    (cached / "kube-apiserver").unlink()
    build = RecordingBuild()

    binaries.resolve(pins=PINS, env=env, build=build, report=lambda _: None)

    assert len(build.calls) == 1


def test_build_that_leaves_the_cache_incomplete_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(binaries.BinariesError, match="incomplete"):
        binaries.resolve(pins=PINS, env=home_env(tmp_path), build=RecordingBuild(fills=False), report=lambda _: None)


def test_versions_key_and_staging_tag() -> None:
    assert PINS.key == "k8s-1.36.3_etcd-3.6.16_kwok-0.8.0"
    assert PINS.staging == "0.36.3"
    assert versions.Versions(kubernetes="1.40.12").staging == "0.40.12"


KUBERNETES_GO_MOD = """\
module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/apiserver v0.0.0
\tk8s.io/klog/v2 v2.130.1
\tk8s.io/client-go v0.0.0
\tk8s.io/utils v0.0.0-20250820121507-0af2bda4dd1d
)

require k8s.io/kms v0.0.0 // indirect

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiserver => ./staging/src/k8s.io/apiserver
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_staging_modules_are_the_v0_0_0_requirements() -> None:
    assert binaries.staging_modules(KUBERNETES_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/apiserver",
        "k8s.io/client-go",
    ]


def test_staging_modules_of_a_go_mod_without_any() -> None:
    assert binaries.staging_modules("module example.com/x\n\nrequire k8s.io/api v0.36.3\n") == []


def test_wrapper_go_mod_replaces_each_staging_module_with_its_tag() -> None:
    staging = ["k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go"]

    text = binaries.kubernetes_wrapper_go_mod(PINS, staging)

    assert "require k8s.io/kubernetes v1.36.3\n" in text
    for module in staging:
        assert f"\t{module} => {module} v0.36.3\n" in text
    assert text.count("=>") == len(staging)
    assert text.startswith("module ")


def test_version_ldflags_stamp_the_release() -> None:
    flags = binaries.version_ldflags(PINS)

    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.36.3" in flags
        assert f"-X {package}.gitMajor=1 " in flags
        assert f"-X {package}.gitMinor=36 " in flags
    assert flags.startswith("-s -w ")
