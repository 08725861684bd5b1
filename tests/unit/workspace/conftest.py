"""Fixtures of the engine's tests: an initialised JVS volume in tmp_path, and a small tree in
its main/ (files in several directories, an executable, a symlink, an empty directory)."""

from __future__ import annotations

import os
import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import layout


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    volume = tmp_path / "volume"
    layout.init(volume)
    return volume


@pytest.fixture
def populated(root: pathlib.Path) -> pathlib.Path:
    main = root / "main"
    jvs_helpers.write(
        main,
        {
            "README.md": "# a workspace\n",
            "data/train.csv": "x,y\n" + "1,2\n" * 5000,
            "data/big.bin": os.urandom(300_000),
            "models/v1/weights.bin": os.urandom(50_000),
            "run.sh": "#!/bin/sh\necho hi\n",
        },
    )
    (main / "run.sh").chmod(0o755)
    (main / "empty").mkdir()
    os.symlink("data/train.csv", main / "latest.csv")
    return root
