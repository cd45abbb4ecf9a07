"""Datasets: the user's JSONL/CSV files and the built-in real sets, with leak-free splits."""

from edgeslm.data.records import Example, read_examples, write_jsonl

__all__ = ["Example", "read_examples", "write_jsonl"]
