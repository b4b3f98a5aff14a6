"""CUDA: the stages on a GPU, in bf16 and fp16. Marked `gpu` and skipped without CUDA;
tools/gpu_check.sh runs them (with the benches) on a machine that has one."""

import pytest
import torch

from merlib.audio.dataset import evaluate_full_length
from merlib.runtime import Runtime, resolve_device, resolve_precision
from merlib.train.loop import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_takes_the_gpu_and_bf16():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device) == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_resnet_trains_and_evaluates_on_the_gpu(precision):
    from merlib.models.resnet import Classifier, ResNet34

    torch.manual_seed(0)
    runtime = Runtime(torch.device("cuda", 0), precision)
    model = Classifier(ResNet34(feat_dim=64, embed_dim=64, m_channels=8), 4).to(runtime.device)
    x = torch.randn(32, 120, 64).pin_memory()
    y = torch.randint(0, 4, (32,))
    x[y == 1] += 0.5
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), progress=False,
                      runtime=runtime)  # fmt: skip
    history = trainer.fit(4, lambda epoch, rng: [(x, y)] * 4)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (trainer.scaler is not None) == (precision == "fp16")
    scores = evaluate_full_length(model, [torch.randn(n, 64) for n in (50, 300)], runtime)
    assert scores.device.type == "cpu" and torch.isfinite(scores).all()


def test_a_bert_step_on_the_gpu_in_bf16():
    import transformers

    runtime = Runtime(torch.device("cuda", 0), "bf16")
    config = transformers.BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=256, num_labels=4)  # fmt: skip
    model = transformers.BertForSequenceClassification(config).to(runtime.device)
    inputs = {"input_ids": torch.randint(1000, 20000, (16, 24)), "attention_mask": torch.ones(16, 24, dtype=torch.long)}
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-4), progress=False, runtime=runtime)
    history = trainer.fit(3, lambda epoch, rng: [(inputs, torch.randint(0, 4, (16,)))] * 3)
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)


def test_the_divergence_guard_stops_a_gpu_run_without_a_sync_per_step():
    from merlib.models.resnet import Classifier, ResNet34
    from merlib.train.loop import GUARD_EVERY, TrainingDivergedError

    runtime = Runtime(torch.device("cuda", 0), "bf16")
    model = Classifier(ResNet34(feat_dim=32, embed_dim=32, m_channels=4), 4).to(runtime.device)
    x = torch.randn(8, 60, 32)
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    batches = [(x, torch.zeros(8, dtype=torch.long))] * 3 + [(bad, torch.zeros(8, dtype=torch.long))]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), progress=False, runtime=runtime)
    with pytest.raises(TrainingDivergedError, match="epoch 1, step 4"):
        trainer.fit(1, lambda epoch, rng: batches * (GUARD_EVERY // 4 + 1))


def _tiny_resnet(runtime):
    from merlib.models.resnet import Classifier, ResNet34

    torch.manual_seed(0)
    return Classifier(ResNet34(feat_dim=32, embed_dim=32, m_channels=4), 4).to(runtime.device)


def test_training_steps_make_no_host_sync_between_the_guards_looks():
    """Steps queue work on the device and go on: the host waits only where the divergence guard
    looks (every GUARD_EVERY steps) and at the epoch's end, so ten steps sync as often as three.
    fp16 with a fused optimiser: the loss scaler's inf check stays on the device."""
    import warnings

    runtime = Runtime(torch.device("cuda", 0), "fp16", fused_optimizer=True)
    model = _tiny_resnet(runtime)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True)
    trainer = Trainer(model, optimizer, progress=False, runtime=runtime, max_grad_norm=5.0)
    batch = (torch.randn(8, 60, 32).pin_memory(), torch.randint(0, 4, (8,)).pin_memory())
    trainer.run_epoch(0, [batch] * 2)  # warm-up: allocations, cuDNN plans
    syncs = {}
    for steps in (3, 10):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.run_epoch(0, [batch] * steps)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs[steps] = sum("synchroniz" in str(w.message) for w in caught)
    assert syncs[10] == syncs[3], syncs


def test_every_step_choice_on_trains_on_the_gpu():
    """channels_last, cudnn_benchmark, compile (two chunk lengths), fused SGD, ragged batches dropped."""
    from merlib.runtime import STEP_CHOICES
    from merlib.train.common import chunk_shapes

    runtime = Runtime(torch.device("cuda", 0), "bf16", **dict.fromkeys(STEP_CHOICES, True))
    model = _tiny_resnet(runtime)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, fused=True)
    trainer = Trainer(model, optimizer, progress=False, runtime=runtime, compile_shapes=chunk_shapes([60, 90], runtime))
    x = {frames: torch.randn(16, frames, 32) for frames in (60, 90)}
    y = torch.randint(0, 4, (16,))
    for frames in x:
        x[frames][y == 1] += 0.5
    history = trainer.fit(4, lambda epoch, rng: [(x[60], y), (x[90], y)] * 2)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not torch.backends.cudnn.benchmark  # on for the training steps only
    scores = evaluate_full_length(model, [torch.randn(n, 32) for n in (50, 300)], runtime)
    assert torch.isfinite(scores).all()
