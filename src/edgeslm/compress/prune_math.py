"""Pure math of pruning: schedules, magnitude masks, importance scores. numpy/torch tensors in,
tensors out; no training loop here."""

from __future__ import annotations

from typing import Any


def cubic_sparsity(step: int, ramp_steps: int, final: float) -> float:
    """Zhu & Gupta (2017) schedule: fast pruning early, gentle near the target."""
    if ramp_steps <= 0:
        return final
    progress = min(1.0, step / ramp_steps)
    return final * (1.0 - (1.0 - progress) ** 3)


def magnitude_mask(weight: Any, sparsity: float) -> Any:
    """Boolean mask (same shape) keeping the largest-|w| (1 - sparsity) share of `weight`."""
    import torch

    k = int(round(weight.numel() * sparsity))
    if k <= 0:
        return torch.ones_like(weight, dtype=torch.bool)
    threshold = weight.detach().abs().flatten().kthvalue(k).values
    return weight.detach().abs() > threshold


def keep_top(scores: Any, keep: float) -> Any:
    """Sorted indices of the `keep` share (at least one) of highest scores."""
    import torch

    n = max(1, int(round(scores.numel() * keep)))
    return torch.sort(torch.topk(scores, n).indices).values


def head_scores(query: Any, key: Any, value: Any, out: Any, n_heads: int) -> Any:
    """Importance of each head [n_heads]: sum of |w x grad| over its rows of Q, K, V
    ([hidden, hidden] Linear weights, out x in) and its columns of the output projection."""
    size = query.weight.shape[0] // n_heads

    def taylor(w: Any) -> Any:
        return (w.weight * w.weight.grad).abs()

    rows = sum(taylor(m).view(n_heads, size, -1).sum(dim=(1, 2)) for m in (query, key, value))
    cols = taylor(out).view(out.weight.shape[0], n_heads, size).sum(dim=(0, 2))
    return rows + cols


def neuron_scores(intermediate: Any, output: Any) -> Any:
    """Importance of each FFN neuron [intermediate]: |w x grad| of its input row and output column."""
    rows = (intermediate.weight * intermediate.weight.grad).abs().sum(dim=1)
    cols = (output.weight * output.weight.grad).abs().sum(dim=0)
    return rows + cols
