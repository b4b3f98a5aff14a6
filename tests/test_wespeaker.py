"""wespeaker's VoxCeleb ResNet34 import, tested on checkpoints merlib writes in wespeaker's names."""
import pytest
import torch

from merlib.audio.features import LogMel
from merlib.config import Config, FeatureConfig, ModelConfig, SpeechConfig
from merlib.models.checkpoints import CheckpointMismatchError
from merlib.models.resnet import ResNet34
from merlib.models.wespeaker import load_wespeaker_resnet, merlib_to_wespeaker, wespeaker_to_merlib
from merlib.train.speech import build_transfer_model


def wespeaker_like(two_layers=False, projection_rows=None, wrap=False, prefix=""):
    torch.manual_seed(1)
    net = ResNet34(feat_dim=80, embed_dim=256, m_channels=32, activation="relu", two_embedding_layers=two_layers)
    state = merlib_to_wespeaker(net.state_dict())
    if projection_rows:
        state["projection.weight"] = torch.randn(projection_rows, 256)
    state = {prefix + key: value for key, value in state.items()}
    return net, ({"state_dict": state} if wrap else state)


def test_key_names_are_wespeakers():
    _, state = wespeaker_like()
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.2.bn2.weight", "seg_1.weight",
            "layer2.0.shortcut.0.weight"} <= set(state)
    assert not any(key.startswith(("embedding", "act")) for key in state)
    assert state["seg_1.weight"].shape == (256, 5120)          # 2 × 256 channels × 10 bins


@pytest.mark.parametrize("two_layers", [False, True])
def test_mapping_both_ways_is_the_identity(two_layers):
    net, state = wespeaker_like(two_layers=two_layers)
    back, dropped = wespeaker_to_merlib(state)
    assert dropped == [] and back.keys() == net.state_dict().keys()
    assert merlib_to_wespeaker(back).keys() == state.keys()
    if two_layers:
        assert {"seg_bn_1.running_mean", "seg_2.weight"} <= set(state)


@pytest.mark.parametrize("options", [{}, {"projection_rows": 3 * 1211, "wrap": True, "prefix": "resnet."}])
def test_load_builds_the_variant_drops_the_projection_and_loads_strictly(tmp_path, options):
    net, state = wespeaker_like(**options)
    torch.save(state, tmp_path / "avg_model.pt")
    model, report, dropped = load_wespeaker_resnet(tmp_path / "avg_model.pt")
    assert (model.feat_dim, model.embed_dim, model.m_channels, model.activation) == (80, 256, 32, "relu")
    assert dropped == (["projection.weight"] if options else [])
    assert not (report.missing or report.unexpected or report.mismatched)
    model.eval(), net.eval()
    x = torch.randn(1, 120, 80)
    assert torch.allclose(model(x), net(x))


def test_a_mismatched_checkpoint_names_the_differing_tensors(tmp_path):
    _, state = wespeaker_like()
    state["layer3.1.conv1.weight"] = torch.zeros(128, 128, 5, 5)
    del state["layer4.2.bn2.running_var"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        load_wespeaker_resnet(tmp_path / "bad.pt")
    assert "missing in checkpoint: layer4.2.bn2.running_var" in str(error.value)
    assert "layer3.1.conv1.weight: checkpoint [128, 128, 5, 5] vs model [128, 128, 3, 3]" in str(error.value)


def test_transfer_from_wespeaker_needs_its_front_end(tmp_path):
    net, state = wespeaker_like(projection_rows=100)
    torch.save(state, tmp_path / "avg_model.pt")
    spec = f"wespeaker:{tmp_path / 'avg_model.pt'}"
    with pytest.raises(CheckpointMismatchError, match=r"features.kind: kaldi_fbank.*speech.model.activation: relu"):
        build_transfer_model(Config(speech=SpeechConfig(pretrained=spec)), spec)
    config = Config(features=FeatureConfig(kind="kaldi_fbank", n_mels=80, normalization="mean"),
                    speech=SpeechConfig(model=ModelConfig(activation="relu"), pretrained=spec))
    model = build_transfer_model(config, spec)
    assert torch.equal(model.backbone.layer4[2].conv2.weight, net.layer4[2].conv2.weight)
    features = LogMel(config.features)(torch.randn(16000) * 0.1)
    assert features.shape == (98, 80) and torch.allclose(features.mean(0), torch.zeros(80), atol=1e-3)
