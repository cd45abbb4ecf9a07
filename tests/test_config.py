from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeslm.config import Config, is_decimal
from edgeslm.errors import ConfigError
from edgeslm.train.config import TrainConfig


def test_train_config_round_trips_through_dict():
    cfg = TrainConfig(max_steps=10, seed=3, learning_rate=5e-5)
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert cfg.to_dict()["version"] == TrainConfig.VERSION


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="unknown field.*learning_rat"):
        TrainConfig.from_dict({"learning_rat": 1e-4})


def test_wrong_type_and_range_rejected():
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": "32"})
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate=3.0)
    with pytest.raises(ConfigError, match="bool|int"):
        TrainConfig(max_steps=True)


def test_newer_config_version_rejected():
    with pytest.raises(ConfigError, match="version 99"):
        TrainConfig.from_dict({"version": 99})


def test_paths_round_trip():
    @dataclass(frozen=True)
    class WithPath(Config):
        out: Path = Path("x")
        other: Path | None = None

    cfg = WithPath(out=Path("a/b"))
    assert WithPath.from_dict(cfg.to_dict()) == cfg


def test_is_decimal_takes_ascii_digits_only():
    assert is_decimal("0") and is_decimal("1883")
    # str.isdigit() takes these; int() refuses the first and reads the second as 3
    assert not is_decimal("\u00b2") and not is_decimal("\u0663") and not is_decimal("") and not is_decimal("-1")
