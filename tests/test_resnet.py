"""ResNet34 with statistics pooling: structure, shapes, variable length, no padding at evaluation."""

import pytest
import torch

from merlib.audio.dataset import evaluate_full_length, take_chunk
from merlib.models.resnet import BasicBlock, Classifier, ResNet34, count_parameters


def test_layer_counts_and_widths():
    net = ResNet34(feat_dim=128, embed_dim=512, m_channels=32)
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert all(isinstance(b, BasicBlock) for i in range(1, 5) for b in getattr(net, f"layer{i}"))
    assert [getattr(net, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [32, 64, 128, 256]
    assert sum(isinstance(m, torch.nn.PReLU) for m in net.modules()) == 1 + 2 * 16
    # 256 channels × 16 bins, mean ‖ std → 8192 → 512: ~9.5M parameters (the paper says 21.5M)
    assert net.pooling.get_out_dim() == 8192
    assert count_parameters(net) == 9_521_984


@pytest.mark.parametrize("frames", [9, 37, 200])
def test_any_length_from_the_minimum_gives_one_embedding(frames):
    net = ResNet34(feat_dim=64, embed_dim=128, m_channels=4).eval()
    assert net(torch.randn(3, frames, 64)).shape == (3, 128)


def test_a_segment_below_the_minimum_is_a_clear_error():
    net = ResNet34(feat_dim=64, embed_dim=128, m_channels=4).eval()
    assert net.min_frames == 9  # three stride-2 stages leave ceil(9 / 8) = 2 frames to pool
    with pytest.raises(ValueError, match="at least 9 frames, got 8"):
        net(torch.randn(1, 8, 64))


def test_wrong_feature_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects \(batch, frames, 64\)"):
        ResNet34(feat_dim=64, m_channels=4)(torch.randn(2, 50, 80))


def test_evaluation_never_pads_and_equals_one_at_a_time():
    torch.manual_seed(0)
    model = Classifier(ResNet34(feat_dim=32, embed_dim=64, m_channels=4), 4).eval()
    segments = [torch.randn(n, 32) for n in (40, 90, 13)]
    scores = evaluate_full_length(model, segments)
    for segment, row in zip(segments, scores):
        alone = torch.log_softmax(model(segment.unsqueeze(0))[0], -1)
        assert torch.allclose(row, alone, atol=1e-6)
    # zero-padding the short segment into a batch would change its statistics: we never do it
    padded = torch.zeros(1, 90, 32)
    padded[0, :13] = segments[2]
    assert not torch.allclose(torch.log_softmax(model(padded)[0], -1), scores[2], atol=1e-3)
    assert torch.allclose(scores.exp().sum(1), torch.ones(3), atol=1e-5)


def test_short_segments_are_repeated_to_the_chunk_length():
    import numpy as np

    from merlib.audio.dataset import plan_chunk_batches, training_items

    segment = torch.arange(5.0).unsqueeze(1).repeat(1, 3)
    chunk = take_chunk(segment, 12, 0)
    assert chunk.shape == (12, 3) and chunk[:, 0].tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]
    long = torch.arange(100.0).unsqueeze(1)
    piece = take_chunk(long, 30, 60)
    assert piece.shape == (30, 1) and piece[0, 0] == 60 and piece[-1, 0] == 89
    # the plan draws an offset that keeps the chunk inside the segment, and 0 for a short one
    plan = plan_chunk_batches([100, 5], training_items(2, 0), 2, [30], np.random.default_rng(1))
    offsets = {spec.index: spec.offset for spec in plan[0]}
    assert 0 <= offsets[0] <= 70 and offsets[1] == 0
