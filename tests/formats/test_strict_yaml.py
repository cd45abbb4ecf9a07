"""Every YAML a user hands us (a home, a device profile, a recipe, a train config) nested thousands of levels
deep is that reader's own "not valid YAML" error; PyYAML alone raises RecursionError."""

from __future__ import annotations

import pytest
import yaml

from edgeslm.cli.train import _read_config
from edgeslm.compress.recipe import load_recipe
from edgeslm.errors import ConfigError
from edgeslm.formats import strict_yaml
from edgeslm.runtime.profiles import load_profile
from edgeslm.runtime.tiers.home import HomeError, load_home

DEEP = "[" * 50_000 + "]" * 50_000


def test_pyyaml_alone_recurses_and_strict_yaml_says_what_is_wrong():
    with pytest.raises(RecursionError):
        yaml.safe_load(DEEP)
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        strict_yaml.safe_load(DEEP)
    assert strict_yaml.safe_load("a: [1, {b: 2}]") == {"a": [1, {"b": 2}]}
    with pytest.raises(TypeError, match="SafeLoader"):
        strict_yaml.safe_load("a: 1", yaml.Loader)  # never the loader that builds Python objects


@pytest.mark.parametrize("read, error", [
    (load_home, HomeError), (load_profile, ConfigError), (lambda p: load_recipe(str(p)), ConfigError),
    (_read_config, ConfigError),
])
def test_each_reader_refuses_a_deep_document_with_its_own_error(tmp_path, read, error):
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nareas: " + DEEP + "\n")
    with pytest.raises(error, match="not valid YAML.*nested too deeply"):
        read(path)


def test_a_train_config_in_json_with_a_number_too_long_is_a_config_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"epochs": ' + "1" * 5000 + "}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        _read_config(path)
