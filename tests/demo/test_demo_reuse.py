"""The demo reuses a finished run only when the config and the data code that made it are today's."""

import json
from pathlib import Path

from edgeslm.data.catalog import code_fingerprint
from edgeslm.demo.run import _same_run
from edgeslm.train.config import TrainConfig


def _run(folder, config, code):
    (folder / "model").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"config": config.to_dict(), "max_length": 48, "dataset": {"code": code}}))
    return folder


def test_a_run_is_reused_only_with_todays_config_and_data_code(tmp_path):
    config = TrainConfig()
    assert _same_run(_run(tmp_path / "a", config, code_fingerprint()), config)
    assert not _same_run(tmp_path / "a", TrainConfig(max_steps=100))  # another config
    assert not _same_run(_run(tmp_path / "b", config, "0" * 64), config)  # e.g. trained before a split fix
    (tmp_path / "b" / "run.json").write_text("{not json")
    assert not _same_run(tmp_path / "b", config)


def test_the_fingerprint_follows_the_data_code(tmp_path, monkeypatch):
    import edgeslm.data.catalog as catalog

    before = code_fingerprint()
    for src in sorted(Path(catalog.__file__).parent.glob("*.py")):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    monkeypatch.setattr(catalog, "__file__", str(tmp_path / "catalog.py"))
    assert code_fingerprint() == before  # same files, same fingerprint
    (tmp_path / "splits.py").write_text((tmp_path / "splits.py").read_text() + "\n# a changed split\n")
    assert code_fingerprint() != before
