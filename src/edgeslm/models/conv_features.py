"""Random-convolution features and a ridge head: a second, different kind of time-series classifier that
the ts-transformer's graph can hold beside its transformers (TsEnsemble).

The features follow MiniRocket (Dempster, Schmidt and Webb, KDD 2021), written here from the paper:
- 84 fixed kernels of length 9, weight -1 everywhere but +2 at three of the nine positions (every choice
  of three); they sum to zero, so a constant offset changes nothing;
- dilations spread exponentially from 1 to (length - 1) / 8, so the kernels see from 9 to the whole series;
- each (dilation, kernel) output gets `per` biases, quantiles of that kernel's output on one random training
  series (quantile levels from the golden-ratio sequence), and each feature is the proportion of positions
  where the output exceeds its bias (PPV);
- the head is ridge regression on the standardized features (targets +-1, regularization chosen by exact
  leave-one-out error), its scores scaled by a temperature fitted on the same leave-one-out scores so that
  softmax gives probabilities that can be averaged with the transformers'.

Unlike MiniRocket every output is padded ("same"), channels are summed by the kernels, and the
convolutions may skip positions (`stride`): a proportion over 250 of 500 positions is nearly the same
number, for half the comparisons. Nothing here trains by gradient; `fit` sets every tensor.

Two options follow MultiRocket (Tan, Dempster, Bergmeir and Webb 2022), also from the paper: `diff` runs
the same kernels over the series' first difference too (a second representation, with biases of its own),
and `pooling` adds, beside PPV, MPV (the mean of the output's excess over the bias where it is over) and
MIPV (the mean position where it is over, as a share of the length; -1 where it never is). Each pooling
reads the same comparison, so it adds features without another convolution. The feature budget is
shared: `features` is split over the representations and the poolings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

KERNELS = 84  # C(9, 3)
ALPHAS = np.logspace(-2, 6, 17)  # ridge regularization tried, on standardized features
TEMPERATURES = np.logspace(-1, 2.5, 71)
MAX_FIT_SERIES = 20_000  # the ridge fit holds series x features in memory: a larger training set is subsampled
POOLINGS = ("ppv", "mpv", "mipv")
AUGMENTS = ("flip", "reverse")


def check_pooling(pooling: str) -> tuple[str, ...]:
    """'ppv+mpv' -> ('ppv', 'mpv'), in POOLINGS' order; ValueError on an unknown or repeated name."""
    names = [p.strip() for p in pooling.split("+")]
    if not names or len(set(names)) != len(names) or not set(names) <= set(POOLINGS):
        raise ValueError(f"pooling {pooling!r}: '+'-joined names from {', '.join(POOLINGS)}, each once")
    return tuple(p for p in POOLINGS if p in names)


def znorm(x: torch.Tensor) -> torch.Tensor:
    """Each series and channel of x [B, L, C] to mean 0, variance 1 (the transformers' and the features' input)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(dim=1, keepdim=True) + 1e-5)


def dilations(length: int) -> list[int]:
    top = math.log2(max(1.0, (length - 1) / 8))
    return sorted({int(d) for d in np.floor(np.logspace(0, top, 32, base=2))})


class ConvFeatureClassifier(nn.Module):
    """x [B, L, C] (z-normalised per series and channel, as the transformers see it) -> scores [B, K]."""

    def __init__(self, length: int, channels: int, classes: int, features: int, stride: int = 1, diff: bool = False,
                 pooling: str = "ppv"):
        """`features` is rounded down to a multiple of 84 x the dilations x the representations (2 with `diff`)
        x the poolings, and is at least one of those."""
        super().__init__()
        self.length, self.stride, self.diff = length, stride, diff
        self.pooling = check_pooling(pooling)
        self.dilations = dilations(length)
        self.per = max(1, features // (KERNELS * len(self.dilations) * self.representations * len(self.pooling)))
        weights = -torch.ones(KERNELS, channels, 9)
        for i, plus in enumerate(itertools.combinations(range(9), 3)):
            weights[i, :, list(plus)] = 2.0
        self.register_buffer("kernels", weights)
        # [representation x dilation, kernel, per]: the raw series' dilations first, then the difference's
        self.register_buffer("biases", torch.zeros(self.representations * len(self.dilations), KERNELS, self.per))
        self.head = nn.Linear(self.features, classes)

    @property
    def representations(self) -> int:
        return 2 if self.diff else 1

    @property
    def features(self) -> int:
        return self.representations * len(self.dilations) * KERNELS * self.per * len(self.pooling)

    def inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The representations the kernels see, each [B, L, C]: x (z-normalised), and with `diff` its first
        difference (0 at the first position, so both have the same length and dilations)."""
        if not self.diff:
            return [x]
        return [x, torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)]

    def output(self, x: torch.Tensor, d: int) -> torch.Tensor:  # [B, L, C] -> [B, 84, L / stride] at dilation d
        return nn.functional.conv1d(x.transpose(1, 2), self.kernels, padding=4 * d, dilation=d, stride=self.stride)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:  # raw [B, L, C] -> [B, R * D * 84, L'], biases' order
        return torch.cat([self.output(r, d) for r in self.inputs(znorm(x)) for d in self.dilations], dim=1)

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, C] -> features [B, F]
        outputs = self.outputs(x)
        biases = self.biases.reshape(-1, self.per, 1)[None]
        if self.pooling == ("ppv",):  # MiniRocket's one comparison, nothing else kept: [B, R * D * 84, per, L']
            return (outputs[:, :, None, :] > biases).float().mean(-1).flatten(1)
        excess = outputs[:, :, None, :] - biases  # [B, R * D * 84, per, L']
        over = (excess > 0).float()
        pooled = []
        if "ppv" in self.pooling:
            pooled.append(over.mean(-1))
        count = over.sum(-1)
        none = (count == 0).float()
        count = count + none  # a count of 0 divides by 1: the sums are 0 there too
        if "mpv" in self.pooling:
            pooled.append((torch.relu(excess)).sum(-1) / count)
        if "mipv" in self.pooling:
            place = torch.arange(excess.shape[-1], dtype=excess.dtype) / excess.shape[-1]
            pooled.append((over * place).sum(-1) / count - none)
        return torch.stack(pooled, dim=-1).flatten(1)  # per kernel and bias, its poolings side by side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.transform(x))


def augmented(x: np.ndarray, augment: Sequence[str]) -> list[np.ndarray]:
    """x [n, L, C] and its copies under the transformations named (AUGMENTS): negated ("flip"), reversed in time
    ("reverse"), and with both, also both at once."""
    unknown = set(augment) - set(AUGMENTS)
    if unknown:
        raise ValueError(f"augment: {sorted(unknown)} unknown; choose from {', '.join(AUGMENTS)}")
    copies = [x]
    if "flip" in augment:
        copies.append(-x)
    if "reverse" in augment:
        copies += [np.ascontiguousarray(c[:, ::-1]) for c in list(copies)]
    return copies


def fit(model: ConvFeatureClassifier, x: np.ndarray, y: np.ndarray, seed: int, batch: int = 128,
        augment: Sequence[str] = ()) -> dict[str, Any]:
    """Set the biases from `x` [n, L, C] and the head by ridge regression on (x, y); what was chosen. `augment`:
    the head also learns from each series' copies under these transformations (those the training config calls
    fair for the data: FordA's engine noise keeps its class negated or reversed), and leave-one-out then leaves
    out a series with all its copies, so the regularization is not chosen on copies of the row left out."""
    rng = np.random.default_rng(seed)
    copies = len(augmented(x[:1], augment))
    if len(y) * copies > MAX_FIT_SERIES:
        keep = np.sort(rng.choice(len(y), MAX_FIT_SERIES // copies, replace=False))
        x, y = x[keep], y[keep]
    classes = model.head.out_features
    levels = ((np.arange(1, model.biases.numel() + 1) * (math.sqrt(5) + 1) / 2) % 1).reshape(model.biases.shape)
    with torch.no_grad():
        for j in range(model.representations * len(model.dilations)):
            picked = model.inputs(znorm(torch.from_numpy(x[rng.integers(0, len(x), KERNELS)])))
            d = model.dilations[j % len(model.dilations)]
            out = model.output(picked[j // len(model.dilations)], d)  # [84 series, 84 kernels, L']: kernel k on series k
            for k in range(KERNELS):
                model.biases[j, k] = torch.quantile(out[k, k], torch.from_numpy(levels[j, k]).float())
        feats = torch.cat([model.transform(torch.from_numpy(c[i:i + batch])) for c in augmented(x, augment)
                           for i in range(0, len(c), batch)])
    features = feats.numpy().astype(np.float64)  # [copies x n, F]: copy-major, so row j is series j % n
    y_all = np.tile(y, copies)
    targets = -np.ones((len(y_all), classes))
    targets[np.arange(len(y_all)), y_all] = 1.0
    ridge = ridge_loo(features, targets, groups=copies)
    temperature = min(TEMPERATURES, key=lambda t: _nll(t * ridge["loo_scores"], y_all))
    weight = temperature * ridge["weight"] / ridge["scale"][:, None]  # [F, K], standardization folded in
    bias = temperature * (ridge["intercept"] - (ridge["center"] / ridge["scale"]) @ ridge["weight"])
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight.T).float())
        model.head.bias.copy_(torch.from_numpy(bias).float())
    return {"features": model.features, "dilations": model.dilations, "biases_per_kernel": model.per,
            "stride": model.stride, "diff": model.diff, "pooling": "+".join(model.pooling), "fit_series": len(y),
            "augment": list(augment), "fit_rows": len(y_all),
            "alpha": float(ridge["alpha"]),
            "temperature": round(float(temperature), 4),
            "loo_accuracy": round(float((ridge["loo_scores"][:len(y)].argmax(-1) == y).mean()), 4)}


def ridge_loo(x: np.ndarray, targets: np.ndarray, alphas: np.ndarray = ALPHAS, groups: int = 1) -> dict[str, Any]:
    """Ridge regression of targets [n, K] on standardized x [n, F] with an intercept, the regularization
    chosen from `alphas` by exact leave-one-out squared error (one thin SVD serves every alpha); the
    leave-one-out scores of the chosen one come back too. `groups` > 1: the rows are that many blocks of n /
    groups, row j of every block the same series, and a series' rows are left out together (exact too: each
    series' residuals through the inverse of I minus its groups x groups block of the hat matrix)."""
    center, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0  # a constant feature stays 0 after centering
    z = (x - center) / scale
    intercept = targets.mean(0)
    t = targets - intercept
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    ut = u.T @ t
    if len(x) % groups:
        raise ValueError(f"ridge_loo: {len(x)} rows are not {groups} equal blocks")
    series = len(x) // groups
    best = None
    for alpha in alphas:
        shrink = s ** 2 / (s ** 2 + alpha)  # the centering's null direction has s = 0 and drops out
        fitted = u @ (shrink[:, None] * ut)
        if groups == 1:
            hat = (u ** 2) @ shrink + 1.0 / len(x)  # + the intercept's share (ones are orthogonal to z)
            residual = (t - fitted) / (1.0 - hat)[:, None]  # leave-one-out residuals
        else:  # a series' rows: j, j + n, j + 2n, ...
            ug = u.reshape(groups, series, -1).transpose(1, 0, 2)  # [series, groups, r]
            block = np.einsum("sgr,r,shr->sgh", ug, shrink, ug) + 1.0 / len(x)
            left = np.eye(groups)[None] - block
            out = (t - fitted).reshape(groups, series, -1).transpose(1, 0, 2)  # [series, groups, K]
            residual = np.linalg.solve(left, out).transpose(1, 0, 2).reshape(len(x), -1)
        error = float((residual ** 2).mean())
        if best is None or error < best[0]:
            best = (error, alpha, shrink, residual)
    _, alpha, shrink, residual = best
    weight = vt.T @ ((shrink / np.where(s > 0, s, 1.0))[:, None] * ut)  # V diag(s / (s^2 + alpha)) U^T t
    return {"alpha": alpha, "weight": weight, "intercept": intercept, "center": center, "scale": scale,
            "loo_scores": t - residual + intercept}


def _nll(scores: np.ndarray, y: np.ndarray) -> float:
    shifted = scores - scores.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())
