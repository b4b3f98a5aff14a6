"""ResNet34 with statistics pooling: structure, shapes, variable length, no padding at evaluation."""

import pytest
import torch

from merlib.audio.dataset import evaluate_full_length, length_buckets, take_chunk
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


def _trained_looking(model):
    """Batch norm with statistics and affine weights far from the identity, so a padded frame
    that leaked into a convolution or the statistics would show (fresh batch norm maps 0 to 0)."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.normal_(generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            if module.affine:
                module.weight.data.normal_(1.0, 0.5, generator=generator)
                module.bias.data.normal_(generator=generator)
    return model.eval()


def test_batched_evaluation_equals_one_at_a_time():
    """Padded, length-sorted batches with lengths: every segment scored as if alone (fp32,
    1e-4), whatever its length (the minimum, odd ones, the batch's longest)."""
    torch.manual_seed(0)
    model = _trained_looking(Classifier(ResNet34(feat_dim=32, embed_dim=64, m_channels=4), 4))
    segments = [torch.randn(n, 32) for n in (40, 90, 13, 9, 41, 57, 88, 17, 90, 64)]
    assert len(length_buckets([len(x) for x in segments], max_frames=400)) < len(segments)  # it batches
    scores = evaluate_full_length(model, segments, max_frames=400)
    with torch.no_grad():
        alone = torch.stack([torch.log_softmax(model(x.unsqueeze(0))[0], -1) for x in segments])
        assert (scores - alone).abs().max() < 1e-4
        # zero-padding without the lengths would change a short segment's scores: never done
        padded = torch.zeros(1, 90, 32)
        padded[0, :13] = segments[2]
        assert not torch.allclose(torch.log_softmax(model(padded)[0], -1), scores[2], atol=1e-3)
    assert torch.allclose(scores.exp().sum(1), torch.ones(len(segments)), atol=1e-5)


def test_length_buckets_sort_and_bound_the_padded_size():
    lengths = [300, 20, 310, 25, 900, 22]
    batches = length_buckets(lengths, max_frames=650)
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    assert batches == [[1, 5, 3], [0, 2], [4]]  # by length; 900 > 650 alone
    assert all(len(b) * max(lengths[i] for i in b) <= 650 or len(b) == 1 for b in batches)


def test_padded_segments_are_refused_in_training_mode():
    model = ResNet34(feat_dim=32, m_channels=4).train()
    with pytest.raises(RuntimeError, match="model.eval"):
        model(torch.zeros(2, 40, 32), torch.tensor([40, 20]))


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
