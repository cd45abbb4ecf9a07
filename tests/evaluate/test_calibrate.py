"""Calibration math: a cascade scored from a table of tier answers, and the cheapest one that reaches
the target chosen (the most accurate one when none does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeslm.errors import ConfigError
from edgeslm.evaluate.calibrate import CalibrateConfig, Table, _precise_from, cascade, choose, pick


def table(rng, n=400):
    # "cheap": 1 ms, right when its confidence is high, often wrong below 0.8;
    # "costly": 10 ms, always answers, right 99% of the time
    conf_a = rng.uniform(0.3, 1.0, n)
    ok_a = np.where(conf_a >= 0.8, True, rng.random(n) < 0.4)
    ok_b = rng.random(n) < 0.99
    return Table(["encoder", "generative"], np.stack([conf_a, np.full(n, 0.6)], 1), np.stack([ok_a, ok_b], 1),
                 np.stack([np.full(n, 1e-3), np.full(n, 1e-2)], 1))


def test_the_cheap_tier_answers_only_where_it_is_reliable():
    t = table(np.random.default_rng(0))
    policy, measured = choose(t, target=0.97, cache_precision=0.995)
    assert policy.order == ["encoder", "generative"]
    assert 0.75 <= policy.thresholds["encoder"] <= 0.85
    assert measured["reached_target"] and measured["accuracy"] >= 0.97
    # cheaper than the costly tier alone, which is as accurate
    assert measured["cpu_ms_per_answer"] < 10.0


def test_an_unreachable_target_gives_the_most_accurate_cascade():
    t = table(np.random.default_rng(1))
    _, measured = choose(t, target=1.0, cache_precision=0.995)
    assert not measured["reached_target"]
    best_single = max(t.correct[:, 0].mean(), t.correct[:, 1].mean())
    assert measured["accuracy"] >= best_single - 1e-9


def test_short_of_the_target_a_cheaper_cascade_within_the_tolerance_wins():
    scored = [(0.969, 9.7e-3, "costly"), (0.968, 2.0e-3, "cheap"), (0.950, 1.0e-3, "cheapest")]
    assert pick(scored, target=0.97, tolerance=0.002)[2] == "cheap"
    assert pick(scored, target=0.97, tolerance=0.0)[2] == "costly"
    assert pick(scored, target=0.95, tolerance=0.002)[2] == "cheapest"  # the target is reached: least CPU


def test_a_tier_without_an_answer_passes_the_command_on():
    conf = np.array([[-1.0, 0.7], [0.9, 0.7]])
    ok = np.array([[False, True], [True, False]])
    t = Table(["templates", "encoder"], conf, ok, np.ones((2, 2)))
    right, answered_conf, cost = cascade(t, (0, 1), (1.0,))
    # the template tier answers nothing on the first (so the encoder does) and 0.9 < 1.0 on the second,
    # where the encoder's 0.7 stops the descent
    assert right.tolist() == [True, False] and answered_conf.tolist() == [0.7, 0.7] and cost.tolist() == [2, 2]


def test_cache_from_is_where_answers_were_precise_enough():
    conf = np.array([0.99, 0.98, 0.97, 0.96, 0.5])
    ok = np.array([True, True, True, False, True])
    assert _precise_from(conf, ok, 0.995) == 0.97
    assert _precise_from(conf, np.zeros(5, dtype=bool), 0.995) == 1.0


@pytest.mark.parametrize("kw, words", [
    ({"homes": []}, "at least one home"), ({"homes": ["a", "b"], "stream": Path("s.jsonl")}, "exactly one"),
    ({"homes": ["a"], "tiers": ["cache"]}, "choose from"), ({"homes": ["a"], "target_accuracy": 1.5}, r"\(0, 1\]"),
])
def test_bad_calibration_configs_are_refused(kw, words):
    with pytest.raises(ConfigError, match=words):
        CalibrateConfig(**kw)


@pytest.mark.model
def test_calibrate_then_replay_with_the_written_policy(tmp_path, session_bundle):
    from edgeslm.evaluate.calibrate import calibrate
    from edgeslm.evaluate.replay import ReplayConfig, replay
    from edgeslm.runtime.tiers.policy import load_policy, write_policy

    home = Path(__file__).resolve().parents[2] / "homes" / "maple-cottage.yaml"
    policy = calibrate(CalibrateConfig(homes=[str(home)], bundle=session_bundle, seeds=[101]))
    c = policy.calibration
    assert c["commands"] > 200 and c["household_weeks"] == [101]
    assert sorted(policy.order) == ["encoder", "templates"]
    # the chosen cascade is at least as accurate as either tier alone, or reaches the target
    assert c["reached_target"] or c["accuracy"] >= max(t["accuracy"] for t in c["tiers_alone"].values())
    path = tmp_path / "assist-policy.json"
    write_policy(policy, path)
    assert load_policy(path) == policy
    stream = Path(__file__).with_name("maple_stream.jsonl")
    r = replay(ReplayConfig(stream=stream, home=home, bundle=session_bundle, policy=path))
    assert r["policy"] == str(path) and r["intent_accuracy"] >= 0.9


def test_the_semantic_threshold_is_where_nearest_pairs_meant_the_same():
    from edgeslm.evaluate.calibrate import semantic_pairs, semantic_threshold

    rng = np.random.default_rng(3)
    cos = np.concatenate([rng.uniform(0.95, 1.0, 200), rng.uniform(0.6, 0.9, 200)])
    same = np.concatenate([np.ones(200, bool), rng.random(200) < 0.5])
    t = semantic_threshold(cos, same, precision=0.995)
    assert t <= 0.95 and same[cos >= t].mean() >= 0.995  # all the paraphrases, at most 1 in 200 wrong
    assert same[cos >= t - 0.02].mean() < 0.995  # and no lower
    assert semantic_threshold(cos[:10], same[:10], precision=0.995) == 1.01  # too few pairs to trust: off
    # from a table: only an earlier command with the same key, said another way, is a pair
    e = np.array([[1.0, 0.0], [0.96, 0.28], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    table = Table(["encoder"], np.zeros((4, 1)), np.zeros((4, 1), bool), np.zeros((4, 1)), e,
                  [("h", "{}", "g")] * 3 + [("h", "{}", "other")], ["on", "on", "off", "on"], ["a", "b", "a", "c"])
    cos, same = semantic_pairs(table)
    assert cos.round(2).tolist() == [0.96, 0.96] and same.tolist() == [True, False]


def test_word_pairs_compare_a_commands_scanned_guard_with_earlier_full_guards():
    from edgeslm.evaluate.calibrate import lexical_pairs

    texts = ["dim the lamp to 40 percent", "dim the lamp to 40 percent thank you", "dim teh lamp to 40 percent",
             "dim the lamp to 40 percent please", "dim the lamp to 40 percent"]
    guards = [("h", "{}", "g")] * 4 + [("h", "{}", "g")]
    scanned = [("h", "{}", "g"), ("h", "{}", "g"), ("h", "{}", "g"), ("h", "{}", "tagger-saw-more"), ("h", "{}", "g")]
    table = Table(["encoder"], np.zeros((5, 1)), np.zeros((5, 1), bool), np.zeros((5, 1)), None, guards,
                  ["a", "a", "b", "a", "a"], texts, scan_guard=scanned)
    sim, same = lexical_pairs(table)
    # 2nd: its words hold the 1st's (1.0); 3rd: a typo, meant something else here; 4th: its scanned guard
    # matches no earlier full guard; 5th: the same words as the 1st, the exact cache's, so its pair is another
    assert sim[0] == 1.0 and same.tolist()[:2] == [True, False] and 0.8 < sim[1] < 1.0
    assert len(sim) == 3 and sim[2] == 1.0


def test_a_tier_after_the_encoder_is_scored_on_its_narrowed_search():
    conf = np.array([[0.5, 1.0], [0.5, -1.0]])  # [commands, (encoder, templates)]
    ok = np.array([[False, True], [False, False]])
    cpu = np.array([[1e-3, 8e-3], [1e-3, 8e-3]])
    narrowed = {1: (np.array([1.0, 1.0]), np.array([True, True]), np.array([3e-3, 3e-3]))}
    t = Table(["encoder", "templates"], conf, ok, cpu, narrowed=narrowed, narrowed_after=0)
    right, _, cost = cascade(t, (0, 1), (0.9,))
    assert right.tolist() == [True, True] and np.allclose(cost, 4e-3)  # encoder, then templates narrowed
    right, _, cost = cascade(t, (1, 0), (0.9,))
    assert right.tolist() == [True, False] and np.allclose(cost, [8e-3, 9e-3])  # templates first: the full search


def test_a_second_look_is_skipped_only_where_it_never_made_an_unsure_answer_right():
    from edgeslm.evaluate.calibrate import SECOND_LOOK_CHANCES, second_look
    from edgeslm.runtime.tiers.policy import Policy

    rng = np.random.default_rng(3)
    n = 300
    # the encoder (1 ms) is unsure (0.5) on a third; there the templates (5 ms) fix its HassGetState answers
    # half the time and never its HassTurnOn ones (they are right or wrong for both alike); a rare intent
    # (HassBroadcast, fewer chances than needed) keeps its second look even though it was never fixed
    kinds = rng.choice(np.array(["HassTurnOn", "HassGetState", "sure"], dtype=object), n, p=[0.2, 0.2, 0.6])
    kinds[:SECOND_LOOK_CHANCES - 1] = "HassBroadcast"
    enc_conf = np.where(kinds == "sure", 0.99, 0.5)
    enc_ok = np.where(kinds == "HassGetState", rng.random(n) < 0.5, rng.random(n) < 0.9)
    tpl_ok = np.where(kinds == "HassGetState", True, enc_ok)
    intents = np.array([[("HassTurnOn" if k == "sure" else k), "x"] for k in kinds], dtype=object)
    # the templates answer at 0.95: below cache_from, so agreeing with the encoder makes nothing cacheable
    t = Table(["encoder", "templates"], np.stack([enc_conf, np.full(n, 0.95)], 1), np.stack([enc_ok, tpl_ok], 1),
              np.stack([np.full(n, 1e-3), np.full(n, 5e-3)], 1), intent=intents)
    policy = Policy(order=["encoder", "templates"], thresholds={"encoder": 0.9}, cache_from=0.98)
    # where agreeing would make the answer sure enough to cache (and seed the semantic cache), it is worth it
    assert second_look(t, Policy.from_dict({**policy.to_dict(), "cache_from": 0.9}))[0] == {}
    skip, looked = second_look(t, policy)
    assert skip == {"templates": ["HassTurnOn"]}
    counts = looked["counts"]["templates"]
    assert counts["HassGetState"]["fixes"] > 0 and counts["HassTurnOn"]["fixes"] == 0
    assert counts["HassBroadcast"]["chances"] == SECOND_LOOK_CHANCES - 1
    right, _, cost = cascade(t, (0, 1), (0.9,))
    assert looked["accuracy"] == round(float(right.mean()), 4)  # nothing lost on validation
    assert looked["cpu_ms_per_answer"] < float(cost.mean()) * 1e3  # and the second looks it skipped are saved


def test_the_ngram_threshold_counts_what_it_loses_against_the_cascade_not_its_own_errors():
    from edgeslm.evaluate.calibrate import quick_threshold

    conf = np.linspace(1.0, 0.0025, 400)
    right = np.ones(400, bool)
    had = np.ones(400, bool)
    right[[10, 11]] = had[[10, 11]] = False  # both wrong: answering sooner loses nothing
    right[250] = False  # the cascade had it right: lost
    right[300:305] = False  # and five more
    # at 1%: 1 lost in 251, 3 in 302 still allowed (3.02), 4 in 303 not, nor anything below
    assert quick_threshold(conf, right, had, precision=0.99) == round(conf[301], 4)
    # at 0.5%: 1 lost allowed from 200 answers on, the 2nd (301st answer) not
    assert quick_threshold(conf, right, had, precision=0.995) == round(conf[299], 4)
    assert quick_threshold(np.full(400, -1.0), right, had, 0.995) == 1.01  # it answered nothing
    assert quick_threshold(conf[:10], right[:10], had[:10], 0.995) == 1.01  # too few answers to trust: off
