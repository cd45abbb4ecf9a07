import pytest
import yaml

from edgeslm.compress.modifiers import QuantizeConfig
from edgeslm.compress.recipe import Recipe, builtin_names, load_recipe
from edgeslm.errors import ConfigError

BUILTINS = {"int8-dynamic", "int8-static", "int4-weight", "sparse90-int8", "structured50-int8", "distill-l3", "gguf-q8_0",
            "gguf-q4_k_m"}


def test_builtins_load_and_round_trip_through_yaml():
    assert set(builtin_names()) == BUILTINS
    for name in BUILTINS:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert Recipe.from_dict(yaml.safe_load(recipe.to_yaml())) == recipe
    assert load_recipe("int8-dynamic").floor == 0.99
    assert load_recipe("sparse90-int8").quantize.compress_file is True


def write(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "modifiers": [{"type": "quantize", "bits": 3}]}, "unknown field.*bits"),
    ({"name": "x", "modifiers": [{"type": "quantise"}]}, "unknown type 'quantise'"),
    ({"name": "x", "floor": 1.5, "modifiers": [{"type": "quantize"}]}, "impossible"),
    ({"name": "x", "floor": 0, "modifiers": [{"type": "quantize"}]}, "impossible"),
    ({"name": "x", "modifiers": [{"type": "quantize"}, {"type": "distill-layers"}]}, "at most one, and last"),
    ({"name": "x", "modifiers": [{"type": "quantize", "scheme": "int2"}]}, "scheme must be one of"),
    ({"name": "x", "modifiers": [{"type": "distill-layers", "layers": [1, 1]}]}, "distinct"),
    ({"name": "x", "modifiers": [{"type": "prune-magnitude", "sparsity": 1.0}]}, "sparsity"),
    ({"name": "x", "modifiers": []}, "non-empty list"),
    ({"name": "x", "modifiers": [{"type": "quantize"}], "priority": 1}, "unknown field.*priority"),
])
def test_bad_recipes_are_refused_before_any_work(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(write(tmp_path, data))


def test_unknown_recipe_name_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="neither a built-in recipe"):
        load_recipe("int3-magic")
    bad = tmp_path / "b.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(str(bad))


def test_quantize_config_defaults_are_valid():
    assert QuantizeConfig().scheme == "int8-dynamic"
    with pytest.raises(ConfigError):
        QuantizeConfig(block_size=48)
