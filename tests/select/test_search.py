"""`select` end to end on the session's small trained run: one recipe, compressed once, measured,
chosen and bundled; a second profile reuses the compressed model and the measurement; a budget the
cost model rules out compresses nothing. The CLI on top: JSON out, a bad budget is one error line."""

import json

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.formats.reader import open_bundle
from edgeslm.select.search import SelectConfig, select

pytestmark = pytest.mark.model

LOOSE = "p90_ms<=10000,ram_mb<=4000,accuracy>=0.9*fp32"


def profile(tmp_path, name, cores, watts_busy):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nmemory_budget_mb: 1024\ncores: {cores}\nthreads: 1\nisa: [avx2]\n"
                    f"watts_idle: 2.0\nwatts_busy: {watts_busy}\n")
    return str(path)


def test_select_chooses_bundles_and_reuses_results_across_profiles(trained_run, tmp_path):
    cache = tmp_path / "cache"
    first = profile(tmp_path, "dev-a", cores=2, watts_busy=10.0)
    cfg = SelectConfig(budget=LOOSE, profile=first, recipes=["int8-dynamic"], latency_calls=30, cache=cache)
    r = select(trained_run, cfg, out=tmp_path / "bundle", plot=tmp_path / "frontier.png")
    assert r["compressed"] == 1 and r["measured"] == 1
    chosen = r["chosen"]
    assert chosen["name"] == "int8-dynamic@1t" and chosen["status"] == "measured" and chosen["reused"] == []
    assert r["frontier"] == ["int8-dynamic@1t"] and r["meets_budget"] == ["int8-dynamic@1t"]
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
    assert chosen["predicted"]["p90_ms"] > 0 and chosen["measured"]["p90_ms"] > 0

    m = open_bundle(tmp_path / "bundle").manifest  # verifies every file's sha256 too
    assert m.format_version == 3 and m.profile == "dev-a"
    sel = m.selection
    assert sel["candidate"] == "int8-dynamic@1t" and sel["threads"] == 1 and sel["budget"] == LOOSE
    assert sel["measured"]["p90_ms"] == pytest.approx(chosen["measured"]["p90_ms"], rel=1e-3)
    assert sel["predicted"]["ram_mb"] == pytest.approx(chosen["predicted"]["ram_mb"], rel=1e-3)
    assert sel["measured"]["accuracy"] >= 0.9 * r["fp32"]["val"]
    assert m.provenance["compression"]["recipe"] == "int8-dynamic"

    # another device with the same ISA and thread count: nothing compressed or measured again; joules
    # are its own (other watts, one core)
    second = profile(tmp_path, "dev-b", cores=1, watts_busy=4.0)
    r2 = select(trained_run, SelectConfig(budget=LOOSE, profile=second, recipes=["int8-dynamic"], latency_calls=30,
                                          cache=cache))
    assert r2["compressed"] == 0
    assert r2["chosen"]["reused"] == ["compressed", "measured"]
    assert r2["chosen"]["measured"]["p90_ms"] == chosen["measured"]["p90_ms"]
    assert r2["chosen"]["measured"]["joules"] < chosen["measured"]["joules"]

    # a budget no candidate can meet is decided by the prediction alone
    r3 = select(trained_run, SelectConfig(budget="p90_ms<=0.001", profile=second, recipes=["int8-dynamic"],
                                          latency_calls=30, cache=tmp_path / "empty"), out=tmp_path / "none")
    assert r3["chosen"] is None and r3["compressed"] == 0 and r3["measured"] == 0
    assert r3["candidates"][0]["reason"].startswith("predicted over budget: p90_ms")
    assert not (tmp_path / "none").exists()

    runner = CliRunner()
    res = runner.invoke(cli, ["select", str(trained_run), "--profile", second, "--budget", LOOSE, "--recipe", "int8-dynamic",
                              "--cache", str(cache), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["chosen"]["name"] == "int8-dynamic@1t"
    res = runner.invoke(cli, ["select", str(trained_run), "--budget", "p90<=5"])
    assert res.exit_code == 2 and "error: budget term 'p90<=5': unknown metric 'p90'" in res.output
