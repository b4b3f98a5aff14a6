"""wespeaker's VoxCeleb ResNet34 import, against wespeaker's own definitions written out here.

The reference below is wespeaker's forward pass (wespeaker/models/resnet.py: BasicBlock,
ResNet._get_frame_level_feat, seg_1 / ReLU / seg_bn_1 / seg_2; pooling_layers.TSTP: std =
sqrt(unbiased var + 1e-7)) in plain torch.nn.functional, on a state dict with wespeaker's key
names made here from shapes alone: neither side goes through merlib's model or key mapping.
"""

import pytest
import torch
import torch.nn.functional as F

from merlib.audio.features import build_front_end
from merlib.config import ConfigError, paper_config
from merlib.models.checkpoints import CheckpointMismatchError
from merlib.models.wespeaker import load_wespeaker_resnet, merlib_to_wespeaker, wespeaker_to_merlib
from merlib.train.speech import build_transfer_model

BLOCKS = ((1, 3, 1), (2, 4, 2), (3, 6, 2), (4, 3, 2))  # layer, blocks, first stride: ResNet34


def wespeaker_state(m=4, feat_dim=16, embed_dim=24, two_layers=False, seed=0):
    """A wespeaker-named ResNet34 state dict with random weights and batch-norm statistics."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape, low=-0.5, high=0.5):
        return low + (high - low) * torch.rand(*shape, generator=generator)

    state = {}

    def bn(prefix, channels, affine=True):
        if affine:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = rand(channels, low=0.5, high=1.5), rand(channels)
        state[f"{prefix}.running_mean"] = rand(channels, low=-0.2, high=0.2)
        state[f"{prefix}.running_var"] = rand(channels, low=0.5, high=2.0)
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(100)

    state["conv1.weight"] = rand(m, 1, 3, 3)
    bn("bn1", m)
    in_planes = m
    for layer, blocks, stride in BLOCKS:
        planes = m * 2 ** (layer - 1)
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            state[f"{prefix}.conv1.weight"] = rand(planes, in_planes, 3, 3) / in_planes**0.5
            bn(f"{prefix}.bn1", planes)
            state[f"{prefix}.conv2.weight"] = rand(planes, planes, 3, 3) / planes**0.5
            bn(f"{prefix}.bn2", planes)
            if block == 0 and (stride != 1 or in_planes != planes):
                state[f"{prefix}.shortcut.0.weight"] = rand(planes, in_planes, 1, 1)
                bn(f"{prefix}.shortcut.1", planes)
            in_planes = planes
    pooled = 2 * in_planes * ((feat_dim + 7) // 8)
    state["seg_1.weight"], state["seg_1.bias"] = rand(embed_dim, pooled) / pooled**0.5, rand(embed_dim)
    if two_layers:
        bn("seg_bn_1", embed_dim, affine=False)
        state["seg_2.weight"], state["seg_2.bias"] = rand(embed_dim, embed_dim), rand(embed_dim)
    return state


def wespeaker_embedding(state, x):
    """wespeaker's ResNet.forward (eval mode), returning the embedding it extracts."""

    def bn(h, prefix):
        return F.batch_norm(
            h,
            state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"],
            state.get(f"{prefix}.weight"),
            state.get(f"{prefix}.bias"),
            training=False,
            eps=1e-5,
        )

    out = x.permute(0, 2, 1).unsqueeze(1)  # (B,T,F) => (B,1,F,T)
    out = F.relu(bn(F.conv2d(out, state["conv1.weight"], padding=1), "bn1"))
    for layer, blocks, stride in BLOCKS:
        for block in range(blocks):
            prefix, step = f"layer{layer}.{block}", stride if block == 0 else 1
            inner = F.relu(bn(F.conv2d(out, state[f"{prefix}.conv1.weight"], stride=step, padding=1), f"{prefix}.bn1"))
            inner = bn(F.conv2d(inner, state[f"{prefix}.conv2.weight"], padding=1), f"{prefix}.bn2")
            shortcut = out
            if f"{prefix}.shortcut.0.weight" in state:
                shortcut = bn(F.conv2d(out, state[f"{prefix}.shortcut.0.weight"], stride=step), f"{prefix}.shortcut.1")
            out = F.relu(inner + shortcut)
    # TSTP: the last dimension is time
    stats = torch.cat([out.mean(dim=-1).flatten(1), torch.sqrt(torch.var(out, dim=-1) + 1e-7).flatten(1)], 1)
    embed_a = F.linear(stats, state["seg_1.weight"], state["seg_1.bias"])
    if "seg_2.weight" not in state:
        return embed_a
    out = F.batch_norm(
        F.relu(embed_a), state["seg_bn_1.running_mean"], state["seg_bn_1.running_var"], training=False, eps=1e-5
    )
    return F.linear(out, state["seg_2.weight"], state["seg_2.bias"])


@pytest.mark.parametrize("two_layers", [False, True])
@pytest.mark.parametrize("frames", [16, 200])
def test_merlib_gives_wespeakers_embedding(tmp_path, two_layers, frames):
    state = wespeaker_state(two_layers=two_layers)
    torch.save(
        {"state_dict": {f"resnet.{k}": v for k, v in state.items()} | {"projection.weight": torch.randn(30, 24)}},
        tmp_path / "avg_model.pt",
    )
    model, report, dropped = load_wespeaker_resnet(tmp_path / "avg_model.pt")
    assert dropped == ["projection.weight"] and not (report.missing or report.unexpected or report.mismatched)
    assert (model.feat_dim, model.embed_dim, model.m_channels, model.activation) == (16, 24, 4, "relu")
    x = torch.randn(3, frames, 16, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        expected = wespeaker_embedding(state, x)
        assert torch.allclose(model.eval()(x), expected, atol=1e-5, rtol=1e-4), (model(x) - expected).abs().max()


def test_statistics_pooling_is_tstp():
    from merlib.models.resnet import StatisticsPooling

    x = torch.randn(2, 5, 4)
    expected = torch.cat([x.mean(-1), (x.var(-1, unbiased=True) + 1e-7).sqrt()], dim=1)
    assert torch.allclose(StatisticsPooling(5)(x), expected)
    with pytest.raises(ValueError, match="at least 2 frames"):
        StatisticsPooling(5)(x[..., :1])


def test_the_key_mapping_is_a_bijection_on_wespeakers_names():
    for two_layers in (False, True):
        state = wespeaker_state(two_layers=two_layers)
        merlib_names, dropped = wespeaker_to_merlib(state)
        assert dropped == [] and merlib_to_wespeaker(merlib_names).keys() == state.keys()
        assert not any(key.startswith(("seg_", "projection")) for key in merlib_names)


def test_a_mismatched_checkpoint_names_the_differing_tensors(tmp_path):
    state = wespeaker_state()
    state["layer3.1.conv1.weight"] = torch.zeros(16, 16, 5, 5)
    del state["layer4.2.bn2.running_var"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        load_wespeaker_resnet(tmp_path / "bad.pt")
    assert "missing in checkpoint: layer4.2.bn2.running_var" in str(error.value)
    assert "layer3.1.conv1.weight: checkpoint [16, 16, 5, 5] vs model [16, 16, 3, 3]" in str(error.value)


def test_transfer_from_wespeaker_needs_its_front_end(tmp_path):
    state = wespeaker_state(m=32, feat_dim=80, embed_dim=256)
    torch.save(state | {"projection.weight": torch.randn(100, 256)}, tmp_path / "avg_model.pt")
    source = {"source": "wespeaker", "path": str(tmp_path / "avg_model.pt")}
    with pytest.raises(CheckpointMismatchError, match=r"features.kind: kaldi_fbank.*speech.model.activation: relu"):
        build_transfer_model(paper_config({"speech": {"pretrained": source}}), tmp_path)
    config = paper_config(
        {
            "features": {"kind": "kaldi_fbank", "n_mels": 80, "normalization": "mean"},
            "speech": {"model": {"activation": "relu"}, "pretrained": source},
        }
    )
    model = build_transfer_model(config, tmp_path)
    assert torch.equal(model.backbone.layer4[2].conv2.weight, state["layer4.2.conv2.weight"])
    features = build_front_end(config.features)(torch.randn(16000) * 0.1)
    assert features.shape == (98, 80) and torch.allclose(features.mean(0), torch.zeros(80), atol=1e-3)
    with pytest.raises(ConfigError, match="speech.pretrained.source: wespeaker needs speech.pretrained.path"):
        paper_config({"speech": {"pretrained": {"source": "wespeaker"}}})
