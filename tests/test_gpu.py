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
