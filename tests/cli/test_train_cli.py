"""`edgeslm train --config` as a user writes it: broken files are one clear line and exit 2."""

import pytest
from tests.cli.test_cli import assert_clean_error, edgeslm


@pytest.mark.parametrize("name, text, pattern", [
    ("bad.yaml", "epochs: [1, 2\nseed: 3\n", "not valid YAML at line"),
    ("list.yaml", "- epochs: 2\n- seed: 3\n", "a train config is a mapping of field: value, got a list"),
    ("scalar.yml", "just words\n", "got a str"),
    ("bad.json", '{"epochs": 2,}', "not valid JSON"),
    ("list.json", "[1, 2]", "got a list"),
    ("latin1.yaml", b"epochs: 2 # caf\xe9\n", "not UTF-8"),
])
def test_a_broken_config_file_is_one_clear_line(tmp_path, name, text, pattern):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_clean_error(edgeslm("train", "--out", str(tmp_path / "r"), "--config", str(path)), pattern)


def test_a_config_files_model_and_data_are_not_overridden_by_flag_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {tmp_path / 'mine.jsonl'}\n")
    # the config's data wins over --data's default (ha-intents): the error names the user's file
    assert_clean_error(edgeslm("train", "--out", str(tmp_path / "r"), "--config", str(path)), "mine.jsonl")
