"""`serve --home --generative PATH`: the option reaches the assistant's generative tier (a model it cannot
use is refused before the server listens). The tier answering through replay with the real model is
tests/evaluate/test_replay_generative.py: one cold prompt of the model per test is enough CI time."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeslm.errors import ConfigError
from edgeslm.runtime.server.serve import ServeConfig, build_app

HOME = Path(__file__).resolve().parents[3] / "homes" / "maple-cottage.yaml"


def test_the_generative_model_option_reaches_the_assistant(tiny_bundle):
    config = ServeConfig(bundles=[str(tiny_bundle)], port=0, home=str(HOME), tiers=["templates", "generative"],
                         generative=str(tiny_bundle), warm=False)
    with pytest.raises(ConfigError, match="a bundle for 'onnxruntime'; the generative tier needs a llama.cpp"):
        build_app(config)
