"""models/conv_features.py: the random-convolution classifier that a ts-transformer graph may hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeslm.models.conv_features import KERNELS, ConvFeatureClassifier, augmented, check_pooling, dilations, fit, ridge_loo


def test_leave_one_out_scores_are_those_of_refitting_without_the_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 60))
    targets = rng.normal(size=(40, 3))
    got = ridge_loo(x, targets, alphas=np.array([7.0]))
    z = (x - got["center"]) / got["scale"]
    for i in (0, 17, 39):
        rest = np.delete(np.arange(40), i)
        zc, tc = z[rest] - z[rest].mean(0), targets[rest] - targets[rest].mean(0)
        w = np.linalg.solve(zc.T @ zc + 7.0 * np.eye(60), zc.T @ tc)
        expected = (z[i] - z[rest].mean(0)) @ w + targets[rest].mean(0)
        np.testing.assert_allclose(got["loo_scores"][i], expected, rtol=1e-6, atol=1e-8)
    # the weights it returns are the full-data ridge solution
    zc = z - z.mean(0)
    w = np.linalg.solve(zc.T @ zc + 7.0 * np.eye(60), zc.T @ (targets - targets.mean(0)))
    np.testing.assert_allclose(got["weight"], w, rtol=1e-6, atol=1e-8)


def test_grouped_leave_one_out_leaves_out_every_copy_of_a_series():
    """Rows in 3 blocks of 20 (a series and two copies of it): a series' leave-one-out score is that of the fit
    without any of its 3 rows."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(20, 30))
    x = np.concatenate([base, base + rng.normal(0, 0.1, base.shape), base[:, ::-1]])
    targets = np.tile(rng.normal(size=(20, 2)), (3, 1))
    got = ridge_loo(x, targets, alphas=np.array([5.0]), groups=3)
    z = (x - got["center"]) / got["scale"]
    for i in (0, 7, 19):
        out = [i, i + 20, i + 40]
        rest = np.delete(np.arange(60), out)
        zc, tc = z[rest] - z[rest].mean(0), targets[rest] - targets[rest].mean(0)
        w = np.linalg.solve(zc.T @ zc + 5.0 * np.eye(30), zc.T @ tc)
        expected = (z[out] - z[rest].mean(0)) @ w + targets[rest].mean(0)
        np.testing.assert_allclose(got["loo_scores"][out], expected, rtol=1e-6, atol=1e-8)
    # one row at a time would let a series' copies vouch for it: its scores would be closer to its targets
    single = ridge_loo(x, targets, alphas=np.array([5.0]))
    assert np.abs(single["loo_scores"] - targets).mean() < np.abs(got["loo_scores"] - targets).mean()
    with pytest.raises(ValueError, match="blocks"):
        ridge_loo(x[:59], targets[:59], groups=3)


def test_the_head_learns_from_flipped_and_reversed_copies():
    """augment=("flip", "reverse"): four copies of each series; a class that keeps under negation and time
    reversal (sine vs square wave) is then told apart as well on negated, reversed series."""
    rng = np.random.default_rng(10)
    x, y = _waves(200, 120, rng)
    copies = augmented(x, ("flip", "reverse"))  # copy-major, in this order: the grouped leave-one-out relies on it
    expected = [x, -x, x[:, ::-1], -x[:, ::-1]]
    assert len(copies) == 4 and all(np.array_equal(c, e) for c, e in zip(copies, expected, strict=True))
    assert len(augmented(x, ("reverse",))) == 2 and len(augmented(x, ())) == 1
    m = ConvFeatureClassifier(120, 1, 2, 1000, stride=2)
    info = fit(m, x, y, seed=3, augment=("flip", "reverse"))
    assert info["augment"] == ["flip", "reverse"] and info["fit_series"] == 200 and info["fit_rows"] == 800
    xt, yt = _waves(200, 120, rng)
    turned = np.ascontiguousarray(-xt[:, ::-1])
    with torch.no_grad():
        for series in (xt, turned):
            assert float((m(torch.from_numpy(series)).argmax(-1).numpy() == yt).mean()) >= 0.95
    with pytest.raises(ValueError, match="augment"):
        fit(m, x, y, seed=3, augment=("shuffle",))


def test_the_regularization_is_chosen_by_leave_one_out_error():
    """Pure noise targets: a heavily regularized fit predicts them best; a clean linear signal: little."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 20))
    assert ridge_loo(x, rng.normal(size=(80, 2)))["alpha"] >= 100
    signal = x @ rng.normal(size=(20, 2))
    assert ridge_loo(x, signal)["alpha"] <= 0.1


def test_kernels_dilations_and_features_are_what_the_paper_says():
    m = ConvFeatureClassifier(500, 1, 2, 5000)
    assert m.kernels.shape == (KERNELS, 1, 9)
    assert torch.all(m.kernels.sum(-1) == 0) and torch.all((m.kernels == 2).sum(-1) == 3)
    assert len({tuple(k.flatten().tolist()) for k in m.kernels}) == KERNELS  # every choice of three, once
    d = dilations(500)
    assert d[0] == 1 and d[-1] == 62 and d == sorted(set(d))  # up to (500 - 1) / 8: the kernel spans the series
    assert dilations(9) == [1] and m.features == len(d) * KERNELS * m.per <= 5000


def _waves(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: a sine; class 1: a square wave of the same period; random phase, offset, scale and noise."""
    t = np.arange(length)
    y = rng.integers(0, 2, n)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    base = np.sin(2 * np.pi * t / 25 + phase)
    x = np.where(y[:, None] == 1, np.sign(base), base) * rng.uniform(0.5, 3, (n, 1)) + rng.normal(0, 5, (n, 1))
    x = x + rng.normal(0, 0.3, x.shape)
    return x[:, :, None].astype(np.float32), y


def test_fit_learns_a_shape_difference_that_offsets_and_scales_do_not_hide(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _waves(300, 120, rng)
    xt, yt = _waves(200, 120, rng)
    m = ConvFeatureClassifier(120, 1, 2, 1000, stride=2)
    info = fit(m, x, y, seed=3)
    assert info["features"] == m.features and info["fit_series"] == 300 and info["loo_accuracy"] >= 0.95
    with torch.no_grad():
        features = m.transform(torch.from_numpy(xt))
        accuracy = float((m(torch.from_numpy(xt)).argmax(-1).numpy() == yt).mean())
    assert accuracy >= 0.95
    assert float(features.min()) >= 0 and float(features.max()) <= 1  # proportions
    assert len(torch.unique(m.biases)) > m.features // 2  # biases were set from the data, not left at zero


@pytest.mark.parametrize("diff,pooling", [(False, "ppv"), (True, "mipv+ppv+mpv")])
def test_features_are_what_the_papers_say_on_one_series(diff, pooling):
    """PPV (MiniRocket), and MultiRocket's MPV, MIPV and first difference, against a direct count."""
    rng = np.random.default_rng(6)
    x, y = _waves(60, 50, rng)
    m = ConvFeatureClassifier(50, 1, 2, 84 * 3 * 2 * 3, diff=diff, pooling=pooling)
    reps, pools = (2, 3) if diff else (1, 1)
    assert len(m.pooling) == pools and m.pooling[0] == "ppv" and m.representations == reps
    assert m.features == reps * len(m.dilations) * KERNELS * m.per * pools
    assert m.biases.shape == (reps * len(m.dilations), KERNELS, m.per)
    fit(m, x, y, seed=7)
    one = torch.from_numpy(x[:1])
    with torch.no_grad():
        got = m.transform(one).reshape(reps, len(m.dilations), KERNELS, m.per, pools)
        z = one[0, :, 0]
        z = (z - z.mean()) / torch.sqrt(((z - z.mean()) ** 2).mean() + 1e-5)
        for r, series in enumerate((z, torch.cat([torch.zeros(1), z[1:] - z[:-1]]))[:reps]):
            for j, d in enumerate(m.dilations):
                for k in (0, 41, 83):
                    w = m.kernels[k, 0]
                    padded = torch.nn.functional.pad(series, (4 * d, 4 * d))
                    out = torch.stack([sum(w[t] * padded[i + t * d] for t in range(9)) for i in range(50)])
                    excess = out - m.biases[r * len(m.dilations) + j, k, 0]
                    over = excess > 0
                    n = int(over.sum())
                    assert abs(float(got[r, j, k, 0, 0]) - n / 50) < 1e-5
                    if not diff:
                        continue
                    _, mpv, mipv = got[r, j, k, 0]
                    assert abs(float(mpv) - (float(excess[over].sum()) / n if n else 0.0)) < 1e-4
                    expected = float(torch.nonzero(over).float().mean()) / 50 if n else -1.0
                    assert abs(float(mipv) - expected) < 1e-5


@pytest.mark.parametrize("bad", ["", "ppv+ppv", "max", "ppv+lspv"])
def test_an_unknown_or_repeated_pooling_is_refused(bad):
    from edgeslm.errors import ConfigError
    from edgeslm.models.ts_transformer import TsTransformerShape

    with pytest.raises(ValueError, match="pooling"):
        check_pooling(bad)
    with pytest.raises(ConfigError, match="rocket_pooling"):
        TsTransformerShape(rocket=5000, rocket_pooling=bad)


@pytest.mark.parametrize("options", [{}, {"diff": True, "pooling": "ppv+mpv+mipv"}])
def test_the_onnx_graph_gives_the_same_scores(options):
    import onnxruntime as ort

    rng = np.random.default_rng(4)
    x, y = _waves(100, 64, rng)
    m = ConvFeatureClassifier(64, 1, 2, 500 * (1 + 5 * bool(options)), **options).eval()
    fit(m, x, y, seed=5)
    import io

    buffer = io.BytesIO()
    torch.onnx.export(m, (torch.zeros(2, 64, 1),), buffer, dynamo=False, opset_version=17, input_names=["series"],
                      output_names=["logits"], dynamic_axes={"series": {0: "batch"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    # held-out series (a training series' own conv outputs are where the biases come from), and of those the ones
    # with no conv output within 2e-5 of its bias: a value that close may compare either way under another CPU's
    # rounding of the convolution's sums (the nearest were 4e-6 away; 58 and 49 of the 64 series are clear)
    held, _ = _waves(64, 64, rng)
    with torch.no_grad():
        outputs = m.outputs(torch.from_numpy(held))
        margin = (outputs[:, :, None, :] - m.biases.reshape(-1, m.per, 1)[None]).abs().flatten(1).min(1).values
        clear = held[(margin > 2e-5).numpy()]
        assert len(clear) >= 16, len(clear)
        expected = m(torch.from_numpy(clear)).numpy()
    np.testing.assert_allclose(session.run(None, {"series": clear})[0], expected, atol=1e-4)


@pytest.mark.parametrize("features", [0, 50])
def test_too_few_features_is_refused_in_the_shape(features):
    from edgeslm.errors import ConfigError
    from edgeslm.models.ts_transformer import TsTransformerShape

    if features == 0:
        assert TsTransformerShape(rocket=0).rocket == 0
        return
    with pytest.raises(ConfigError, match="rocket"):
        TsTransformerShape(rocket=features)
