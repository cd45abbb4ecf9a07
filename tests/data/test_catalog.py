import pytest

from edgeslm.data.catalog import load_dataset
from edgeslm.data.records import Example, write_jsonl
from edgeslm.errors import DataError


def test_single_file_split_keeps_groups_together(tmp_path):
    rows = [Example(f"text {i}", "a" if i % 2 else "b", group=f"g{i // 10}") for i in range(400)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    s = load_dataset(str(path))
    assert s.labels == ["a", "b"]
    groups = [{e.group for e in getattr(s, n)} for n in ("train", "val", "test")]
    assert not groups[0] & groups[1] and not groups[0] & groups[2]


def test_folder_with_unknown_eval_label(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [Example("x", "a"), Example("y", "b")])
    write_jsonl(tmp_path / "val.jsonl", [Example("x", "a")])
    write_jsonl(tmp_path / "test.jsonl", [Example("z", "c")])
    with pytest.raises(DataError, match="never seen in train: c"):
        load_dataset(str(tmp_path))


def test_unknown_name():
    with pytest.raises(DataError, match="neither a built-in dataset"):
        load_dataset("imdb-please")


def test_rotten_tomatoes_real_file_split_by_movie():
    s = load_dataset("rotten-tomatoes")
    assert s.labels == ["fresh", "rotten"]
    total = sum(s.sizes().values())
    assert 10000 < total < 13000
    movies_train = {e.group for e in s.train}
    assert not movies_train & {e.group for e in s.test}
