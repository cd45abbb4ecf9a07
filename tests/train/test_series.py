"""`edgeslm train --model ts-transformer`: the config, and a real (short) training on a slice of ECG5000."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeslm.cli.main import cli
from edgeslm.data.series import read_series_rows
from edgeslm.errors import ConfigError
from edgeslm.train.run import RunFolder
from edgeslm.train.series import SeriesTrainConfig, augment, is_series_run, load_series_model, lr_factor

# a model small enough to train in seconds on a slice of ECG5000 (each test adds its own steps and slice)
TINY = {"data": "ecg5000", "batch_size": 32, "patch": 8, "stride": 8, "d_model": 32, "heads": 2, "layers": 1, "ff": 64,
        "threads": 2}


def test_the_run_learned_and_kept_its_splits(series_run):
    record = json.loads(RunFolder(series_run).record_file.read_text())
    assert is_series_run(series_run) and record["task"] == "series-classification"
    assert record["labels"] == ["1", "2", "3", "4", "5"] and record["series"] == {"length": 140, "channels": 1}
    assert record["dataset"]["sizes"] == {"train": 300, "val": 51, "test": 4500}
    # ECG5000's majority class is 58% of the test split: the model must do far better than guessing it
    assert record["metrics"]["test"]["accuracy"] >= 0.85, record["metrics"]
    assert record["metrics"]["test"]["n"] == 4500 and record["steps"] == 150
    x, names = read_series_rows(RunFolder(series_run).split("test"))
    assert x.shape == (4500, 140, 1) and len(names) == 4500
    model, _ = load_series_model(series_run)
    assert model.shape.length == 140 and sum(p.numel() for p in model.parameters()) == record["params"]


def test_config_round_trips_and_refuses_nonsense():
    config = SeriesTrainConfig(data="ecg5000", epochs=3)
    assert SeriesTrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown field"):
        SeriesTrainConfig.from_dict({"max_length": 64})
    with pytest.raises(ConfigError, match="ts-transformer"):
        SeriesTrainConfig(model="minilm-l6")
    with pytest.raises(ConfigError, match="multiple of heads"):
        SeriesTrainConfig(d_model=30, heads=4).shape(140, 1, 5)
    assert SeriesTrainConfig(patch=16, stride=8).shape(10, 1, 2).patch == 10  # short series: one patch, not an error
    with pytest.raises(ConfigError, match="probabilities"):
        SeriesTrainConfig(flip=1.5)


def test_sign_flip_and_time_reversal_are_what_they_say_and_off_by_default():
    import torch

    x = torch.arange(24, dtype=torch.float32).reshape(2, 6, 2) + 1
    assert torch.equal(augment(x, 0.0, 0.0, torch.Generator().manual_seed(0), flip=1.0), -x)
    assert torch.equal(augment(x, 0.0, 0.0, torch.Generator().manual_seed(0), reverse=1.0), x.flip(1))
    # off: no draw is taken, so a config without them trains exactly as before they existed
    g, plain = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(augment(x, 0.5, 0.1, g), augment(x, 0.5, 0.1, plain))
    assert torch.equal(g.get_state(), plain.get_state())
    ramp = torch.arange(1, 7, dtype=torch.float32).reshape(1, 6, 1).repeat(64, 1, 1)
    some = augment(ramp, 0.0, 0.0, torch.Generator().manual_seed(0), flip=0.5, reverse=0.5)
    kinds = {(bool(s[0, 0] < 0), bool(s[0, 0].abs() > s[-1, 0].abs())) for s in some}  # (negated, reversed)
    assert len(kinds) == 4  # each of the four (flipped or not, reversed or not) happens


def test_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10) < 0.01


def test_cli_refuses_a_token_window_for_series(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--model", "ts-transformer", "--data", "ecg5000", "--max-length", "64",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "a series model reads the series' own length" in result.output


def test_a_weight_average_is_what_is_scored_and_kept(tmp_path):
    from edgeslm.train.series import train_series

    small = {**TINY, "limit_train": 120, "max_steps": 24, "epochs": 8}
    plain = train_series(SeriesTrainConfig(**small), tmp_path / "plain")
    averaged = train_series(SeriesTrainConfig(**small, ema=0.9), tmp_path / "ema")
    a, _ = load_series_model(tmp_path / "plain")
    b, _ = load_series_model(tmp_path / "ema")
    # the same seed and batches: the kept weights differ only because the average is what is kept...
    assert any(not (pa == pb).all() for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    # ...and the validation score recorded for the chosen epoch is the kept model's own
    best = next(h for h in averaged["history"] if h["step"] == averaged["best_step"])
    assert best["val_accuracy"] == averaged["metrics"]["val"]["accuracy"]
    assert plain["config"]["ema"] == 0.0 and averaged["config"]["ema"] == 0.9
    with pytest.raises(ConfigError, match="ema"):
        SeriesTrainConfig(ema=1.0)


def test_a_deeper_stem_keeps_the_length_exports_and_leaves_one_layer_runs_readable(tmp_path):
    import numpy as np
    import onnxruntime as ort
    import torch

    from edgeslm.export.series import export_series_onnx
    from edgeslm.models.ts_transformer import TsTransformer, TsTransformerShape

    torch.manual_seed(0)
    one = TsTransformer(TsTransformerShape(length=140, classes=5, stem=8))
    # a run trained before stem_layers existed has exactly these weights, so it still loads
    assert {k for k in one.state_dict() if k.startswith("stem.")} == {
        "stem.0.weight", "stem.0.bias", "stem.1.weight", "stem.1.bias", "stem.1.running_mean", "stem.1.running_var",
        "stem.1.num_batches_tracked"}
    deep = TsTransformer(TsTransformerShape(length=140, classes=5, stem=8, stem_layers=3)).eval()
    x = torch.randn(3, 140, 1)
    assert deep.stem(x.transpose(1, 2)).shape == (3, 8, 140)  # dilations 1, 2, 4 pad to the same length
    path = tmp_path / "model.onnx"
    export_series_onnx(deep, path)
    session = ort.InferenceSession(str(path))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - deep(x).numpy()).max() < 1e-4
    with pytest.raises(ConfigError, match="stem_layers"):
        TsTransformerShape(stem_layers=0)


def test_given_splits_are_trained_and_scored_instead_of_the_configs_data(tmp_path):
    """benchmarks/series_cv.py hands train_series a fold of TRAIN: the run trains on it and scores the held-out fold,
    never reading the set's own TEST."""
    import numpy as np

    from edgeslm.data.series import SeriesSplits, load_series
    from edgeslm.train.series import train_series

    data = load_series("ecg5000", 13)
    x, y = data.x_train, data.y_train
    split = SeriesSplits(x[:200], y[:200], x[200:240], y[200:240], x[240:300], y[240:300], data.labels, data.meta)
    small = {**TINY, "max_steps": 8, "epochs": 2}
    record = train_series(SeriesTrainConfig(**small), tmp_path / "fold", data=split)
    assert record["dataset"]["sizes"] == {"train": 200, "val": 40, "test": 60}
    assert record["metrics"]["test"]["n"] == 60 and record["metrics"]["val"]["n"] == 40
    _, names = read_series_rows(RunFolder(tmp_path / "fold").split("test"))
    assert names == [data.labels[i] for i in np.asarray(y[240:300])]


def test_an_ensemble_holds_the_single_run_as_its_first_member_and_averages_probabilities(tmp_path):
    """members: K trains K models on the same splits (member 0 is the single model's run, weight for weight)
    and the one graph answers the log of their mean probability, in ONNX as in torch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from edgeslm.export.series import export_series_onnx
    from edgeslm.train.series import predict_logits, train_series

    small = {**TINY, "limit_train": 120, "max_steps": 12, "epochs": 4}
    single = train_series(SeriesTrainConfig(**small), tmp_path / "one")
    pair = train_series(SeriesTrainConfig(**small, members=2), tmp_path / "two")
    one, _ = load_series_model(tmp_path / "one")
    two, record = load_series_model(tmp_path / "two")
    assert record["shape"]["members"] == 2 and [m["seed"] for m in pair["members"]] == [13, 14]
    assert pair["params"] == 2 * single["params"] and pair["steps"] == 2 * single["steps"]
    for (k, a), (k2, b) in zip(one.state_dict().items(), two.members[0].state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(two.members[0].parameters(), two.members[1].parameters(), strict=True))
    x = read_series_rows(RunFolder(tmp_path / "two").split("val"))[0][:16]
    with torch.no_grad():
        probs = [torch.softmax(m(torch.from_numpy(x)), -1).numpy() for m in two.members]
    got = predict_logits(two, x)
    assert np.allclose(np.exp(got), np.mean(probs, axis=0), atol=1e-5)  # softmax of the answer = the mean
    path = tmp_path / "model.onnx"
    export_series_onnx(two, path)
    session = ort.InferenceSession(str(path))
    assert np.abs(session.run(None, {"series": x})[0] - got).max() < 1e-4
    with pytest.raises(ConfigError, match="members"):
        SeriesTrainConfig(members=0)


def test_a_refit_trains_on_the_validation_carve_too_and_keeps_the_last_weights(tmp_path):
    from edgeslm.train.series import train_series

    small = {**TINY, "limit_train": 120, "max_steps": 10, "epochs": 4}
    plain = train_series(SeriesTrainConfig(**small), tmp_path / "plain")
    refit = train_series(SeriesTrainConfig(**small, refit=True), tmp_path / "refit")
    assert plain["dataset"]["sizes"]["train"] == 120 and refit["dataset"]["sizes"]["train"] == 120 + 51
    assert refit["best_step"] == refit["steps"] == 10 and refit["history"] == []  # no epoch is chosen
    # the carve's score is of series the model saw, and says so; the plain run's does not
    assert refit["metrics"]["val"]["seen_in_training"] is True and "seen_in_training" not in plain["metrics"]["val"]


def test_a_rocket_joins_the_transformers_in_one_graph_with_its_share_of_the_probability(tmp_path):
    """rocket: N fits the random-convolution classifier on the same training series (no gradient steps), keeps
    the transformer run as it was, records each part's score, and the one graph (torch and ONNX) answers
    log((1 - w) p_transformers + w p_rocket)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from edgeslm.export.series import export_series_onnx
    from edgeslm.train.series import predict_logits, train_series

    small = {**TINY, "limit_train": 120, "max_steps": 12, "epochs": 4}
    plain = train_series(SeriesTrainConfig(**small), tmp_path / "plain")
    both = train_series(SeriesTrainConfig(**small, rocket=600, rocket_stride=2, rocket_weight=0.4), tmp_path / "both")
    assert both["steps"] == plain["steps"] and both["best_step"] == plain["best_step"]
    # 600 rounds to one bias per kernel and dilation, the fewest there are
    rocket = both["rocket"]
    assert rocket["features"] == 84 * len(rocket["dilations"]) and rocket["fit_series"] == 120 and rocket["stride"] == 2
    parts = both["metrics"]["test"]["parts"]
    assert parts["transformers"] == plain["metrics"]["test"]["accuracy"]  # the same transformer, untouched
    assert parts["rocket"] >= 0.8, parts  # 120 beats are enough for the random-convolution features
    model, record = load_series_model(tmp_path / "both")
    assert record["shape"]["rocket"] == 600 and len(model.members) == 1
    x = read_series_rows(RunFolder(tmp_path / "both").split("val"))[0][:16]
    with torch.no_grad():
        p_t = torch.exp(model.transformers(torch.from_numpy(x))).numpy()
        p_r = torch.softmax(model.rocket(torch.from_numpy(x)), -1).numpy()
    got = predict_logits(model, x)
    assert np.allclose(np.exp(got), 0.6 * p_t + 0.4 * p_r, atol=1e-5)
    path = tmp_path / "model.onnx"
    export_series_onnx(model, path)
    # only beats with no conv output within 2e-5 of its bias: closer may compare either way on another CPU
    with torch.no_grad():
        r = model.rocket
        outputs = r.outputs(torch.from_numpy(x))
        clear = ((outputs[:, :, None, :] - r.biases.reshape(-1, r.per, 1)[None]).abs().flatten(1).min(1).values > 2e-5)
    clear = clear.numpy()
    assert clear.sum() >= 8, int(clear.sum())
    assert np.abs(ort.InferenceSession(str(path)).run(None, {"series": x[clear]})[0] - got[clear]).max() < 1e-4
    with pytest.raises(ConfigError, match="rocket"):
        SeriesTrainConfig(rocket=600, rocket_weight=1.0).shape(140, 1, 5)
    with pytest.raises(ConfigError, match="flip or reverse"):
        SeriesTrainConfig(rocket=600, rocket_augment=True)  # nothing the config calls fair to copy


def test_the_rocket_in_a_run_is_the_one_series_fuse_fits_on_the_same_rows(tmp_path):
    """benchmarks/series_fuse.py scores a feature setting by fitting ConvFeatureClassifier on a fold's training rows
    with the run's seed; a run with `rocket` fits exactly that, so the choice it makes holds for training."""
    import torch

    from edgeslm.data.series import SeriesSplits, load_series
    from edgeslm.models.conv_features import ConvFeatureClassifier, fit
    from edgeslm.train.series import train_series

    data = load_series("ecg5000", 13)
    x, y = data.x_train, data.y_train
    split = SeriesSplits(x[:150], y[:150], x[150:190], y[150:190], x[190:250], y[190:250], data.labels, data.meta)
    train_series(SeriesTrainConfig(**{**TINY, "max_steps": 4, "epochs": 1}, rocket=1300, rocket_stride=4,
                                   rocket_diff=True, rocket_pooling="ppv+mpv", reverse=0.5, rocket_augment=True),
                 tmp_path / "run", data=split)
    model, record = load_series_model(tmp_path / "run")
    assert record["rocket"]["diff"] is True and record["rocket"]["pooling"] == "ppv+mpv"
    assert record["rocket"]["augment"] == ["reverse"] and record["rocket"]["fit_rows"] == 300
    alone = ConvFeatureClassifier(140, 1, 5, 1300, 4, diff=True, pooling="ppv+mpv")
    fit(alone, x[:150], y[:150], 13, augment=("reverse",))
    for (k, a), (k2, b) in zip(model.rocket.state_dict().items(), alone.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
