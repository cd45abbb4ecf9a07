"""Shared fixtures. `trained_run` and `bundle_dir` use the real MiniLM-L6 weights on a small sample of
the real ha-intents data: a short but genuine train -> export path, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    out = tmp_path_factory.mktemp("run") / "run"
    config = TrainConfig(max_steps=60, limit_train=1920, limit_eval=300, eval_every=30, learning_rate=2e-4)
    train(config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def session_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.bundle.export import export_classifier

    out = tmp_path_factory.mktemp("bundle") / "intent-small"
    export_classifier(trained_run, out)
    return out


@pytest.fixture
def bundle_copy(session_bundle: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(session_bundle, dst)
    return dst
