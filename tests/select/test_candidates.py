"""What each built-in recipe does to the cost model's inputs, and the thread counts a profile allows."""

from edgeslm.compress.recipe import load_recipe
from edgeslm.select.candidates import compress_cost, encoder_recipes, profile_threads, spec_for, thread_options
from edgeslm.select.costmodel import EncoderShape

MINILM = EncoderShape(layers=6, hidden=384, ffn=1536, heads=12, vocab=30522, positions=512, labels=42)


def test_recipes_map_to_specs():
    assert spec_for(load_recipe("distill-l3"), MINILM).layers == 3
    s = spec_for(load_recipe("structured50-int8"), MINILM)
    assert (s.heads_keep, s.ffn_keep, s.dtype) == (0.5, 0.4, "int8")
    s = spec_for(load_recipe("sparse90-int8"), MINILM)
    assert (s.sparsity, s.embedding_sparsity, s.xz) == (0.9, 0.75, True)
    s = spec_for(load_recipe("int4-weight"), MINILM)
    assert (s.dtype, s.graph, s.embeddings) == ("int4", "unfused", "int8")
    assert spec_for(load_recipe("int8-static"), MINILM).dtype == "int8-static"


def test_only_encoder_recipes_and_cheapest_first():
    names = {r.name for r in encoder_recipes()}
    assert "int8-dynamic" in names and not any(n.startswith("gguf") for n in names)
    assert compress_cost(load_recipe("int8-dynamic")) < compress_cost(load_recipe("distill-l3")) \
        < compress_cost(load_recipe("sparse90-int8"))


def test_thread_counts_split_by_what_this_machine_can_emulate():
    assert thread_options(4, usable=2) == ([1, 2], [4])
    assert thread_options(6, usable=8) == ([1, 2, 4, 6], [])
    assert thread_options(1, usable=2) == ([1], [])


def test_the_thread_counts_a_profile_allows_are_checked_for_encoders_and_decoders_alike():
    import os

    import pytest

    from edgeslm.errors import ConfigError
    from edgeslm.runtime.profiles import load_profile

    one = load_profile("rpi4")  # 4 threads
    usable = len(os.sched_getaffinity(0))
    assert profile_threads(one, [1]) == ([1], [])
    assert profile_threads(one, []) == thread_options(one.threads, usable)
    with pytest.raises(ConfigError, match=r"threads \[8\]: profile rpi4 allows at most 4"):
        profile_threads(one, [1, 8])
    if usable < 4:
        with pytest.raises(ConfigError, match="can be emulated"):
            profile_threads(one, [4])

