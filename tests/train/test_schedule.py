"""The training schedule and token window sized to the data (pure functions, no model)."""

import pytest

from edgeslm.train.schedule import MAX_WINDOW, MIN_WINDOW, plan, token_window

DEFAULTS = {"batch_size": 32, "epochs": 1.5, "min_steps": 300, "max_epochs": 20, "max_steps": None,
            "eval_every": 150}


def test_a_small_set_gets_the_minimum_steps_not_21():
    s = plan(480, **DEFAULTS)  # 602 labelled statements, 80% for training: 1.5 epochs were 22 steps
    assert s.steps_per_epoch == 15 and s.total == 300 and s.epochs == 20
    assert s.eval_every == 15  # validated once an epoch
    assert s.stop_after == 300  # early stopping cannot end it before the minimum


def test_a_tiny_set_is_bounded_in_epochs():
    s = plan(64, **DEFAULTS)
    assert s.steps_per_epoch == 2 and s.total == 40 and s.epochs == 20 and s.stop_after == 40


def test_a_large_set_keeps_its_epochs():
    s = plan(19625, **DEFAULTS)  # the built-in ha-intents training split
    assert s.total == int(613 * 1.5) and s.eval_every == 150 and s.stop_after == 300


def test_max_steps_caps_everything():
    s = plan(480, **{**DEFAULTS, "max_steps": 60})
    assert s.total == 60 and s.stop_after == 60


def test_window_covers_99_percent_in_multiples_of_16():
    lengths = [20] * 90 + [70] * 9 + [900]  # 99 of 100 fit in 70 tokens
    assert token_window(lengths, model_window=512) == 80


def test_window_has_a_floor_and_a_ceiling():
    assert token_window([10] * 50, model_window=512) == MIN_WINDOW
    assert token_window([2000] * 50, model_window=512) == MAX_WINDOW
    assert token_window([2000] * 50, model_window=128) == 128  # never past the model's position table
    assert token_window([], model_window=512) == MIN_WINDOW


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000])
def test_schedule_is_never_empty(n):
    s = plan(n, **DEFAULTS)
    assert s.total >= 1 and 1 <= s.eval_every <= s.steps_per_epoch and 1 <= s.stop_after <= s.total
