"""`ts-transformer`: a small transformer encoder for time series, trained from scratch (nothing to load).

    x [B, L, C] -> per-series, per-channel z-normalisation (optional, inside the graph)
                -> conv stem [B, S, L] (`stem_layers` convolutions, kernel 7, dilation 1, 2, 4, ...)
                -> patch embedding (Conv1d, kernel `patch`, stride `stride`) [B, T, D]
                -> + learned positions -> `layers` pre-norm blocks (multi-head attention, GELU MLP)
                -> mean over T -> LayerNorm -> Linear -> logits [B, K]

With `members` > 1 the graph holds that many such models, trained from different seeds, and gives the log of
their mean class probability (a deep ensemble in one graph: one file, one call, logits out as before).

With `rocket` > 0 the graph also holds a second, different kind of classifier beside them: random-convolution
features (models/conv_features.py, after MiniRocket) and a ridge head, and gives the log of
(1 - rocket_weight) x the transformers' mean probability + rocket_weight x the head's.

Attention is written with plain MatMul/Softmax so the ONNX graph is ordinary ops that ONNX Runtime's
int8 quantizer turns into integer MatMuls (nn.TransformerEncoderLayer exports a fused fast path in eval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from edgeslm.config import Config
from edgeslm.errors import ConfigError
from edgeslm.models.conv_features import ConvFeatureClassifier, check_pooling, znorm

NAME = "ts-transformer"


@dataclass(frozen=True)
class TsTransformerShape(Config):
    """The architecture, saved in the run and the bundle's provenance."""

    length: int = 500
    channels: int = 1
    classes: int = 2
    patch: int = 16
    stride: int = 8
    stem: int = 32  # channels of the conv stem before patching; 0: patch the raw series
    stem_layers: int = 1  # convolutions in the stem; each after the first doubles its dilation (a wider view)
    d_model: int = 64
    heads: int = 4
    layers: int = 3
    ff: int = 128
    dropout: float = 0.1
    normalize: bool = True  # z-normalise each series and channel inside the graph: raw sensor units in
    members: int = 1  # independently trained copies whose probabilities are averaged (1: one model)
    rocket: int = 0  # random-convolution features of a second classifier in the graph (0: none)
    rocket_stride: int = 1  # the features' convolutions look at every `rocket_stride`-th position
    rocket_weight: float = 0.5  # its share of the combined probability
    rocket_diff: bool = False  # the features also see the series' first difference (MultiRocket's second input)
    rocket_pooling: str = "ppv"  # '+'-joined: ppv, mpv, mipv (conv_features.POOLINGS)

    def validate(self) -> None:
        if self.length < 4 or not 1 <= self.channels <= 64 or self.classes < 2:
            raise ConfigError("ts-transformer: length >= 4, channels in [1, 64], classes >= 2")
        if not 1 <= self.patch <= self.length or not 1 <= self.stride <= self.patch:
            raise ConfigError(f"ts-transformer: patch must be in [1, length={self.length}] and stride in [1, patch]")
        if self.d_model % self.heads or self.d_model < 8 or self.layers < 1 or self.ff < 8 or self.stem < 0 \
                or not 1 <= self.stem_layers <= 6:
            raise ConfigError("ts-transformer: d_model must be a multiple of heads (>= 8), layers >= 1, ff >= 8, stem >= 0, "
                              "stem_layers in [1, 6]")
        if not 0 <= self.dropout < 1:
            raise ConfigError("ts-transformer: dropout must be in [0, 1)")
        if not 1 <= self.members <= 8:
            raise ConfigError("ts-transformer: members must be between 1 and 8")
        if self.rocket and not 84 <= self.rocket <= 50_000 or not 1 <= self.rocket_stride <= 16 \
                or not 0 < self.rocket_weight < 1:
            raise ConfigError("ts-transformer: rocket is 0 (none) or 84 to 50,000 features, rocket_stride in [1, 16], "
                              "rocket_weight in (0, 1)")
        try:
            check_pooling(self.rocket_pooling)
        except ValueError as exc:
            raise ConfigError(f"ts-transformer: rocket_{exc}") from None

    @property
    def tokens(self) -> int:
        return (self.length - self.patch) // self.stride + 1


class Block(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D]
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // self.heads)), dim=-1)  # [B, H, T, T]
        x = x + self.drop(self.out((attn @ v).transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.norm2(x)))


class TsTransformer(nn.Module):
    def __init__(self, shape: TsTransformerShape):
        super().__init__()
        self.shape = shape
        s = shape
        patch_in = s.stem or s.channels
        stem: list[nn.Module] = []
        for i in range(s.stem_layers if s.stem else 0):
            stem += [nn.Conv1d(s.stem if i else s.channels, s.stem, 7, padding=3 * 2 ** i, dilation=2 ** i),
                     nn.BatchNorm1d(s.stem), nn.GELU()]
        self.stem = nn.Sequential(*stem) if stem else nn.Identity()
        self.patch = nn.Conv1d(patch_in, s.d_model, s.patch, stride=s.stride)
        self.pos = nn.Parameter(torch.randn(1, s.tokens, s.d_model) * 0.02)
        self.drop = nn.Dropout(s.dropout)
        self.blocks = nn.ModuleList(Block(s.d_model, s.heads, s.ff, s.dropout) for _ in range(s.layers))
        self.norm = nn.LayerNorm(s.d_model)
        self.head = nn.Linear(s.d_model, s.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, C] -> logits [B, K]
        if self.shape.normalize:
            x = znorm(x)
        h = self.patch(self.stem(x.transpose(1, 2))).transpose(1, 2)  # [B, T, D]
        h = self.drop(h + self.pos)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h.mean(dim=1)))


class TsEnsemble(nn.Module):
    """`shape.members` TsTransformers and, with `shape.rocket`, a random-convolution classifier; logits = log of
    the combined probability, so softmax gives it."""

    def __init__(self, shape: TsTransformerShape):
        super().__init__()
        self.shape = shape
        one = replace(shape, members=1, rocket=0)
        self.members = nn.ModuleList(TsTransformer(one) for _ in range(shape.members))
        self.rocket = ConvFeatureClassifier(shape.length, shape.channels, shape.classes, shape.rocket, shape.rocket_stride,
                                            shape.rocket_diff, shape.rocket_pooling) if shape.rocket else None

    def transformers(self, x: torch.Tensor) -> torch.Tensor:  # log of the members' mean probability [B, K]
        logp = torch.stack([torch.log_softmax(m(x), dim=-1) for m in self.members])  # [M, B, K]
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, C] -> [B, K]
        logp = self.transformers(x)
        if self.rocket is None:
            return logp
        w = self.shape.rocket_weight
        both = torch.stack([logp + math.log(1 - w), torch.log_softmax(self.rocket(x), dim=-1) + math.log(w)])
        return torch.logsumexp(both, dim=0)


def build(shape: TsTransformerShape) -> nn.Module:
    """The model a shape describes: one TsTransformer, or an ensemble of `members` of them and the
    random-convolution classifier."""
    return TsTransformer(shape) if shape.members == 1 and not shape.rocket else TsEnsemble(shape)
