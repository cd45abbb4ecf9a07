"""Shared fixtures. `trained_run` and `session_bundle` use the real MiniLM-L6 weights on a sample of
the real ha-intents data: a short but genuine, well-trained train -> export path, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.train.config import TrainConfig
    from edgeslm.train.trainer import train

    out = tmp_path_factory.mktemp("run") / "run"
    # Well trained on purpose: 60 steps at 2e-4 left it a third right, and its near-tied logits flipped
    # under another CPU's int8 kernels (GuardError on an Intel Xeon). 200 steps at 5e-4 reach about
    # 94% on 300 held-out sentences of all 42 intents, so compression tests keep the built-in floors.
    config = TrainConfig(max_steps=200, limit_train=6400, limit_eval=300, eval_every=100, learning_rate=5e-4)
    train(config, out, progress=False)
    return out


@pytest.fixture(scope="session")
def session_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.export.onnx import export_classifier

    out = tmp_path_factory.mktemp("bundle") / "intent-small"
    export_classifier(trained_run, out)
    return out


@pytest.fixture(scope="session")
def early_exit_bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The early-exit bundle of `trained_run` (compress/early_exit.py): int8 segments, exits after layers 2
    and 4 with heads fitted on 1,000 training sentences, thresholds chosen on the run's validation split."""
    from edgeslm.compress.early_exit import EarlyExitConfig, build_early_exit

    out = tmp_path_factory.mktemp("early-exit") / "intent-early-exit"
    build_early_exit(trained_run, out, EarlyExitConfig(head_samples=1000))
    return out


@pytest.fixture
def bundle_copy(session_bundle: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(session_bundle, dst)
    return dst


# The tiny synthetic bundle (tests/tiny_bundle.py): for tests that need *a* bundle, not the real model.
@pytest.fixture(scope="session")
def make_tiny_bundle():
    """tiny_bundle.make_tiny_bundle, for a test that needs a variant (other labels, max_length, inputs)."""
    import importlib.util

    # --import-mode=importlib puts no test folder on sys.path, so the helper is loaded by its path.
    spec = importlib.util.spec_from_file_location("tiny_bundle", Path(__file__).with_name("tiny_bundle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_tiny_bundle


@pytest.fixture(scope="session")
def tiny_bundle(make_tiny_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verified encoder bundle that loads and predicts in milliseconds; shared, so never modify it."""
    return make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "tiny-encoder")


@pytest.fixture
def tiny_bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of tiny_bundle a test may damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


# Time series: a small ts-transformer trained on a slice of the real ECG5000 (official splits, validation from
# TRAIN), and its int8 bundle under the guard; built once per session (about 20 s on 2 cores).
@pytest.fixture(scope="session")
def series_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.train.series import SeriesTrainConfig, train_series

    out = tmp_path_factory.mktemp("series-run") / "ecg5000"
    train_series(SeriesTrainConfig(data="ecg5000", limit_train=300, max_steps=150, batch_size=32, patch=8, stride=4,
                                   stem=8, d_model=32, heads=2, layers=2, ff=64, threads=2), out)
    return out


@pytest.fixture(scope="session")
def series_bundle(series_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeslm.compress.recipe import load_recipe, with_bar
    from edgeslm.compress.series import compress_series

    out = tmp_path_factory.mktemp("series-bundle") / "ecg5000-int8"
    # a 50-series validation split moves 2 points a series: the floor leaves room for one flip
    compress_series(series_run, with_bar(load_recipe("int8-dynamic"), floor=0.97), out, latency_rounds=20)
    return out
