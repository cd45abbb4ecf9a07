"""The guard's rule on its own: measure, repair cheapest first, refuse with the shortfall. The
measurements are given (a list of values), the repairs are the product's own."""

from types import SimpleNamespace

import pytest

from edgeslm.compress.gguf import DECODER_REPAIRS, DecoderState
from edgeslm.compress.guard import FINAL, Bar, Guard, GuardError, Outcome, Repair


def run(bar, repairs, state, values):
    said, seen = [], iter(values)

    def attempt(s):
        v = next(seen)
        return Outcome(FINAL, v, {"value": v}, v)

    return Guard(bar, repairs, "recipe test", said.append).run(state, attempt), said


def test_a_decoder_over_its_ceiling_is_repaired_once_then_refused():
    bar = Bar("perplexity", 11.0, False, "1.1x F16 10.000")
    (outcome, attempts), said = run(bar, DECODER_REPAIRS, DecoderState("Q4_K_M"), [11.5, 10.9])
    assert outcome.value == 10.9 and attempts == [{"value": 11.5}, {"value": 10.9}]
    assert "repair: output layer and token embeddings at Q8_0" in said
    with pytest.raises(GuardError, match=r"missed its ceiling: perplexity 11\.6000 > 11\.0000 \(1\.1x F16 10\.000\), "
                                         r"short by 0\.6000 after 2 attempt\(s\)"):
        run(bar, DECODER_REPAIRS, DecoderState("Q4_K_M"), [11.5, 11.6])
    with pytest.raises(GuardError, match="after 1 attempt"):  # Q8_0 already keeps them at Q8_0: nothing to repair
        run(bar, DECODER_REPAIRS, DecoderState("Q8_0"), [11.5])


def test_repairs_run_cheapest_first_whatever_order_they_are_given_in():
    class Named(Repair):
        def __init__(self, name, cost):
            self.name, self.cost = name, cost

        def applies(self, state):
            return self.name not in state.done

        def apply(self, state):
            state.done.append(self.name)
            return self.name

    state = SimpleNamespace(done=[])
    bar = Bar("validation accuracy", 0.9, True, "95% of fp32")
    with pytest.raises(GuardError, match="after 4 attempt"):
        run(bar, (Named("retrain", 3), Named("scan", 2), Named("scales", 1)), state, [0.5, 0.6, 0.7, 0.8])
    assert state.done == ["scales", "scan", "retrain"]
    (outcome, _), _ = run(bar, (), SimpleNamespace(), [0.9])  # exactly at the floor passes
    assert outcome.value == 0.9
