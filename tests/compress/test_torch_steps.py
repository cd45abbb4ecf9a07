"""The magnitude-pruning schedule on a tiny real BERT: sparsity follows the cubic ramp."""

import itertools

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgeslm.compress import prune_math  # noqa: E402
from edgeslm.compress.modifiers import MagnitudePruneConfig  # noqa: E402
from edgeslm.compress.torch_steps import MagnitudePrune  # noqa: E402


class StepsOnly:
    """Runs only the per-step hook: the schedule is what is under test, not the distillation."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def distill(self, student, config, steps, desc, after_step=None):
        weight = student.bert.encoder.layer[0].intermediate.dense.weight
        for step in range(1, steps + 1):
            after_step(step)
            self.seen.append(float((weight == 0).float().mean()))


def test_sparsity_ramps_up_on_the_cubic_schedule_instead_of_jumping_to_the_target():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, num_labels=3)
    teacher = transformers.BertForSequenceClassification(config)
    prune = MagnitudePrune(MagnitudePruneConfig(sparsity=0.9, steps=100, include_embeddings=False))
    ctx = StepsOnly(teacher)
    prune.build(teacher, ctx)
    ramp, every = 70, 2
    assert ctx.seen[0] == 0.0  # step 1 comes before the first point of the schedule: still dense
    assert ctx.seen[every - 1] == pytest.approx(prune_math.cubic_sparsity(every, ramp, 0.9), abs=0.02)
    assert ctx.seen[ramp // 2 - 1] < 0.9 - 0.05
    assert ctx.seen[ramp - 1] == pytest.approx(0.9, abs=0.01) and ctx.seen[-1] == pytest.approx(0.9, abs=0.01)
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(ctx.seen))  # never less sparse than before
