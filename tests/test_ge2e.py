"""The offline GE2E speaker encoder: strict load from the wheel, same embedding as resemblyzer."""

import numpy as np
import pytest
import torch
from ge2e_fixture import ge2e_test_signal

from merlib.io import save_torch
from merlib.models.checkpoints import CheckpointMismatchError
from merlib.models.ge2e import GE2EBackbone, GE2EEncoder, partial_slices, partial_windows, resemblyzer_weights

REFERENCE = "tests/data/ge2e_reference.npy"  # made by tools/ge2e_reference.py with resemblyzer's own code


@pytest.fixture(scope="module")
def encoder():
    return GE2EEncoder.from_resemblyzer()


def test_strict_load_drops_only_the_ge2e_loss_scalars(encoder):
    assert encoder.dropped_keys_ == ["similarity_weight", "similarity_bias"]
    saved = torch.load(resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"]
    assert torch.equal(encoder.lstm.weight_hh_l2, saved["lstm.weight_hh_l2"])
    assert torch.equal(encoder.linear.bias, saved["linear.bias"])


def test_embedding_equals_resemblyzers_reference(encoder):
    reference = np.load(REFERENCE)
    embedding = encoder.embed_utterance(ge2e_test_signal())
    assert embedding.shape == (256,) and np.linalg.norm(embedding) == pytest.approx(1, abs=1e-5)
    assert float(embedding @ reference) >= 0.999


def test_partials_cover_the_utterance():
    # 3 s = 301 frames; a partial every round(16000 / 1.3 / 160) = 77 frames; the last one
    # (154..314) covers (48000 - 154·160) / 25600 = 91% ≥ 75% of its samples, so it stays
    assert partial_slices(16000 * 3) == [slice(0, 160), slice(77, 237), slice(154, 314)]
    assert partial_slices(8000) == [slice(0, 160)]  # shorter than one partial: padded


def test_segments_are_pooled_over_partial_windows():
    assert partial_windows(120) == [slice(0, 120)]  # a training chunk: one partial
    assert partial_windows(300) == [slice(0, 160), slice(77, 237), slice(140, 300)]  # the last ends at the end
    backbone = GE2EBackbone()
    segments = torch.rand(2, 300, 40)
    pooled = backbone.pooled(segments)
    with torch.no_grad():
        one = backbone.encoder(segments[1:, 77:237])
    assert pooled.shape == (2, 256) and torch.allclose(pooled.norm(dim=1), torch.ones(2))
    # batched pooling equals pooling each segment alone, and mixes no segments
    assert torch.allclose(pooled[1], backbone.pooled(segments[1:])[0], atol=1e-6)
    partials = torch.cat([backbone.encoder(segments[1:, w]) for w in partial_windows(300)])
    expected = partials.mean(0) / partials.mean(0).norm()
    assert torch.allclose(pooled[1], expected, atol=1e-6) and not torch.allclose(pooled[1], one[0], atol=1e-3)


def test_a_checkpoint_of_another_shape_is_named(tmp_path):
    state = dict(torch.load(resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"])
    state["linear.weight"] = torch.zeros(128, 256)
    save_torch({"model_state": state}, tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatchError, match=r"linear.weight: checkpoint \[128, 256\] vs model \[256, 256\]"):
        GE2EEncoder.from_resemblyzer(tmp_path / "other.pt")


def test_ge2e_is_a_backbone_for_the_same_transfer_protocol(tmp_path):
    from merlib.config import ConfigError, load_config
    from merlib.train.speech import build_transfer_model

    config = load_config("configs/demo.yaml").system_config("speech_ge2e")
    model = build_transfer_model(config, tmp_path)
    saved = torch.load(resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"]
    assert torch.equal(model.backbone.encoder.lstm.weight_ih_l0, saved["lstm.weight_ih_l0"])
    assert model(torch.rand(3, 120, 40)).shape == (3, 4)
    assert [type(m).__name__ for m in model.backbone.frame_layers()] == ["LSTM", "Linear"]
    from merlib.models.backbone import Backbone

    assert isinstance(model.backbone, Backbone)
    with pytest.raises(ConfigError, match="system speech_ge2e: speech.model.backbone: ge2e needs its own front end"):
        load_config(
            "configs/demo.yaml",
            {
                "systems": [
                    {
                        "name": "speech_ge2e",
                        "modality": "speech",
                        "overrides": {
                            "speech": {"model": {"backbone": "ge2e"}, "pretrained": {"source": "resemblyzer"}}
                        },
                    }
                ],
                "fusions": [],
            },
        )
