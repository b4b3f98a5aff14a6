"""The one training loop and the transfer stages: schedule, freezing, resume, divergence,
checkpoint mismatches."""

import numpy as np
import pytest
import torch

from merlib.config import ConfigError, paper_config
from merlib.io import save_torch
from merlib.models.checkpoints import CheckpointMismatchError
from merlib.models.resnet import Classifier, ResNet34
from merlib.train.common import frame_and_segment_parameters, optimizer_for
from merlib.train.loop import Schedule, Trainer, TrainingDivergedError
from merlib.train.speech import build_transfer_model


def test_paper_schedule_constant_for_8_epochs_then_halved_every_other():
    factors = [Schedule(constant_epochs=8, halve_every=2).factor(e) for e in range(14)]
    assert factors == [1.0] * 8 + [0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert [Schedule(constant_epochs=3, warmup_epochs=1).factor(e) for e in range(4)] == [0.5, 1.0, 1.0, 0.5]


def tiny_data(n=64, frames=20, mel=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, frames, mel, generator=generator)
    y = torch.randint(0, 4, (n,), generator=generator)
    x[y == 1] += 0.5
    return x, y


def batches(x, y, size=16):
    def make(epoch, rng):
        order = torch.as_tensor(rng.permutation(len(y)))
        for start in range(0, len(y), size):
            yield x[order[start : start + size]], y[order[start : start + size]]

    return make


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return Classifier(ResNet34(feat_dim=16, embed_dim=16, m_channels=2), 4)


def trainer_for(model, checkpoint=None, lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(
        model, optimizer, schedule=Schedule(constant_epochs=1), checkpoint=checkpoint, seed=3, progress=False
    )


def test_training_lowers_the_loss():
    x, y = tiny_data()
    history = trainer_for(tiny_model()).fit(4, batches(x, y))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [round(h["lr_factor"], 3) for h in history] == [1.0, 0.5, 0.5, 0.25]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    x, y = tiny_data()
    straight = tiny_model()
    trainer_for(straight).fit(3, batches(x, y))
    interrupted = tiny_model()
    trainer_for(interrupted, tmp_path / "run.ckpt").fit(2, batches(x, y))  # "killed" after epoch 2
    resumed = tiny_model(seed=99)  # a new process
    history = trainer_for(resumed, tmp_path / "run.ckpt").fit(3, batches(x, y))
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    trainer_for(model, tmp_path / "run.ckpt").fit(1, batches(x, y))
    before = (tmp_path / "run.ckpt").read_bytes()
    x_bad = x.clone()
    x_bad[0, 0, 0] = float("nan")
    with pytest.raises(
        TrainingDivergedError,
        match=r"loss is not finite \(nan or inf\) at epoch 2, step 1 .*Lower the learning rate.*run\.ckpt",
    ):
        trainer_for(model, tmp_path / "run.ckpt").fit(2, batches(x_bad, y, size=64))
    assert (tmp_path / "run.ckpt").read_bytes() == before


def test_the_starting_point_competes_with_the_epochs(tmp_path):
    """Fine-tuning a probed model keeps the probe when no epoch beats it on the hold-out."""
    x, y = tiny_data()
    model = tiny_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    scores = iter([0.9, 0.5, 0.6])  # start, epoch 1, epoch 2: training only made it worse
    trainer = trainer_for(model, tmp_path / "ft.ckpt")
    trainer.select = "holdout_ua"
    trainer.fit(
        2, batches(x, y), lambda epoch: {"holdout_ua": next(scores)}, evaluate_start=True, keep_start_if_best=True
    )
    assert trainer.start == {"holdout_ua": 0.9} and trainer.best_epoch == -1
    trainer.restore_best()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in start.items())
    resumed = trainer_for(tiny_model(seed=5), tmp_path / "ft.ckpt")  # a new process: start is kept
    resumed.select = "holdout_ua"
    resumed.fit(3, batches(x, y), lambda epoch: {"holdout_ua": 0.95}, evaluate_start=True, keep_start_if_best=True)
    assert resumed.start == {"holdout_ua": 0.9} and resumed.best_epoch == 2
    recorded = trainer_for(tiny_model())  # recorded only: the best epoch is always a trained one
    recorded.select = "holdout_ua"
    scores = iter([0.9, 0.5, 0.6])
    recorded.fit(2, batches(x, y), lambda epoch: {"holdout_ua": next(scores)}, evaluate_start=True)
    assert recorded.start == {"holdout_ua": 0.9} and recorded.best_epoch == 1


def test_adam_is_a_config_choice_and_a_typo_is_refused_at_load():
    model = tiny_model()
    frame, segment = frame_and_segment_parameters(model)
    stage = paper_config({"speech": {"fine_tune": {"optimizer": "adam"}}}).speech.fine_tune
    optimizer = optimizer_for(frame, segment, stage)
    assert isinstance(optimizer, torch.optim.Adam) and [g["name"] for g in optimizer.param_groups] == ["conv", "fc"]
    with pytest.raises(
        ConfigError, match=r"speech.fine_tune.optimizer: 'adamw' is not allowed; choose one of: sgd, adam"
    ):
        paper_config({"speech": {"fine_tune": {"optimizer": "adamw"}}})


def test_fine_tuning_changes_both_parameter_groups():
    x, y = tiny_data()
    model = tiny_model()
    frame, segment = frame_and_segment_parameters(model)
    optimizer = optimizer_for(frame, segment, paper_config().speech.fine_tune)
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.1]
    before = [p.clone() for p in frame], [p.clone() for p in segment]
    Trainer(model, optimizer, progress=False).fit(1, batches(x, y))
    assert any(not torch.equal(a, b) for a, b in zip(before[0], frame))
    assert any(not torch.equal(a, b) for a, b in zip(before[1], segment))


def small_config(checkpoint):
    return paper_config(
        {
            "features": {"n_mels": 16},
            "speech": {
                "model": {"m_channels": 2, "embed_dim": 16},
                "pretrained": {"source": "checkpoint", "path": str(checkpoint)},
            },
        }
    )


def test_transfer_loads_convolutions_and_replaces_the_fc_layers(tmp_path):
    torch.manual_seed(123)  # not the transfer model's seed: the FC layers must differ
    pretrained = ResNet34(feat_dim=16, embed_dim=16, m_channels=2)
    save_torch(pretrained.state_dict(), tmp_path / "backbone.pt")
    model = build_transfer_model(small_config(tmp_path / "backbone.pt"), tmp_path)
    assert torch.equal(model.backbone.conv1.weight, pretrained.conv1.weight)
    assert not torch.equal(model.backbone.embedding.weight, pretrained.embedding.weight)


def test_mismatched_checkpoint_names_every_differing_tensor(tmp_path):
    save_torch(ResNet34(feat_dim=16, embed_dim=16, m_channels=4).state_dict(), tmp_path / "wide.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        build_transfer_model(small_config(tmp_path / "wide.pt"), tmp_path)
    message = str(error.value)
    assert "conv1.weight: checkpoint [4, 1, 3, 3] vs model [2, 1, 3, 3]" in message
    assert "layer4.2.conv2.weight" in message and "speech.model" in message
    save_torch(ResNet34(feat_dim=32, embed_dim=16, m_channels=2).state_dict(), tmp_path / "mel32.pt")
    with pytest.raises(CheckpointMismatchError, match=r"features.n_mels"):
        build_transfer_model(small_config(tmp_path / "mel32.pt"), tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a loadable state-dict checkpoint.*delete it"):
        build_transfer_model(small_config(tmp_path / "junk.pt"), tmp_path)


def test_bench_loop_comparison_runs_on_a_tiny_model():
    from merlib.bench import compare_loops

    x, y = tiny_data(n=8)
    model = tiny_model()
    result = compare_loops(model, torch.optim.SGD(model.parameters(), lr=0.01), x, y, steps=1, rounds=1)
    assert set(result) == {"bare_step_s", "merlib_step_s", "loop_overhead_ratio"} and result["loop_overhead_ratio"] > 0


def test_bench_counts_a_steps_flops_and_measures_the_data_paths_stall():
    """A linear layer's training step: 2·batch·in·out FLOPs forward, twice that backward (the
    gradients of the input and of the weight); the data-path comparison runs the real loader."""
    from merlib.bench import data_path_stall, peak_tflops, step_flops
    from merlib.runtime import CPU_FP32

    layer = torch.nn.Linear(16, 4, bias=False)
    assert step_flops(layer, torch.randn(8, 16, requires_grad=True), torch.randint(0, 4, (8,))) == 3 * 2 * 8 * 16 * 4
    assert peak_tflops(CPU_FP32) is None  # no MFU on a CPU
    config = paper_config({"features": {"n_mels": 16}, "speech": {"fine_tune": {"batch_size": 4}}})
    result = data_path_stall(tiny_model(), config, CPU_FP32, steps=3)
    assert result["steady_steps"] == 3 and 0 <= result["stall_fraction"] < 1
    assert result["steps_per_s_data_path"] > 0 and result["steps_per_s_resident"] > 0


def test_the_pooled_vector_cache_is_invalidated_by_what_changes_the_vectors_only():
    """The probe's cache of pooled vectors is named by what computes them: a frozen weight, the
    features, the augmentation, the seed or the precision give another cache; the segment layers
    the probe trains do not."""
    from merlib.train.speech import pooled_cache_key

    config, model = paper_config(), tiny_model()
    key = pooled_cache_key(config, model.backbone, "fp32")
    assert key == pooled_cache_key(config, tiny_model().backbone, "fp32")  # the same weights
    with torch.no_grad():
        next(p for n, p in model.backbone.named_parameters() if n.startswith("embedding.")).add_(1.0)
    assert pooled_cache_key(config, model.backbone, "fp32") == key  # trained by the probe: not in the key
    changed = [
        pooled_cache_key(config, model.backbone, "bf16"),
        pooled_cache_key(paper_config({"features": {"n_mels": 40}}), model.backbone, "fp32"),
        pooled_cache_key(paper_config({"augment": {"copies": 1}}), model.backbone, "fp32"),
        pooled_cache_key(paper_config({"seed": 1}), model.backbone, "fp32"),
    ]
    with torch.no_grad():
        next(p for n, p in model.backbone.named_parameters() if not n.startswith("embedding.")).add_(1e-3)
    changed.append(pooled_cache_key(config, model.backbone, "fp32"))
    assert len({key, *changed}) == 1 + len(changed)


def test_the_speaker_hold_out_is_each_speakers_last_utterances_in_one_pass():
    """The same split as the definition (a speaker's last `k` utterances, manifest order kept in
    both parts), in one pass: a VoxCeleb2-size list of records is split in about a second."""
    import time

    from merlib.data.speakers import SpeakerUtterance
    from merlib.train.speaker import holdout_positions

    rng = np.random.default_rng(0)

    def records(count, speakers):
        names = rng.integers(speakers, size=count)
        return [SpeakerUtterance(f"u{i}", f"id{n:05d}", "v", f"w{i}.wav", 1.0) for i, n in enumerate(names)]

    def holdout_split(records, per_speaker):
        train, held = holdout_positions(records, per_speaker)
        return [records[p] for p in train], [records[p] for p in held]

    small = records(300, 20)
    train, holdout = holdout_split(small, 2)
    held = {r.id for s in {r.speaker for r in small} for r in [r for r in small if r.speaker == s][-2:]}
    assert [r.id for r in holdout] == [r.id for r in small if r.id in held]
    assert [r.id for r in train] == [r.id for r in small if r.id not in held]
    large = records(200_000, 6000)
    started = time.perf_counter()
    train, holdout = holdout_split(large, 2)
    assert time.perf_counter() - started < 5 and len(train) + len(holdout) == len(large)


def test_weighted_ce_weighs_each_class_by_its_rarity_in_training():
    from merlib.train.loop import class_weights_for

    labels = torch.tensor([0] * 6 + [1] * 3 + [3] * 1)  # class 2 never in training
    weights = class_weights_for("weighted_ce", labels, 4)
    assert torch.allclose(weights, torch.tensor([10 / 18, 10 / 9, 0.0, 10 / 3]))  # n / (3 classes × n_class)
    assert class_weights_for("ce", labels, 4) is None
    with pytest.raises(ValueError, match="use ce or weighted_ce"):
        class_weights_for("focal", labels, 4)


def test_the_training_loop_applies_the_class_weights():
    """One step's loss is the weighted cross-entropy, divided by the item count (so DDP's ranks
    add up): a weight of 0 on a class removes its items."""
    x, y = tiny_data(n=16)
    y[:8], y[8:] = 0, 1
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0])
    model = tiny_model()
    with torch.no_grad():
        model.eval()
        expected = torch.nn.functional.cross_entropy(model(x[:8]), y[:8]).item() / 2  # class 0's 8 items of 16
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), progress=False, class_weights=weights,
                      set_train_mode=lambda m: m.eval())  # fmt: skip
    total, count = trainer.run_epoch(0, [(x, y)])
    assert total / count == pytest.approx(expected, rel=1e-5)


def test_the_vector_store_keeps_one_tensor_and_reads_the_older_dict_of_tensors(tmp_path):
    from merlib.train.vector_store import VectorStore

    store = VectorStore(tmp_path / "pooled.pt")
    vectors = torch.randn(5, 3)
    store.update((f"u{i}/0", vectors[i]) for i in range(3))
    assert "u1/0" in store and torch.equal(store["u2/0"], vectors[2])
    store.update([("u3/0", vectors[3])])
    store.save()
    saved = torch.load(tmp_path / "pooled.pt", weights_only=True)
    assert saved["keys"] == ["u0/0", "u1/0", "u2/0", "u3/0"] and torch.equal(saved["vectors"], vectors[:4])
    again = VectorStore(tmp_path / "pooled.pt")
    assert len(again) == 4 and not again.changed and torch.equal(again["u3/0"], vectors[3])
    with pytest.raises(KeyError, match="already in the vector store"):
        again.update([("u0/0", vectors[4])])
    save_torch({"a": vectors[0], "b": vectors[1]}, tmp_path / "older.pt")  # the format before the store
    older = VectorStore(tmp_path / "older.pt")
    assert torch.equal(older["b"], vectors[1]) and not older.changed


TINY_BENCH = {"features": {"n_mels": 16}, "speech": {"model": {"m_channels": 2, "embed_dim": 16},
                                                     "fine_tune": {"batch_size": 4}}}  # fmt: skip


def test_bench_measures_each_step_choice_it_can_on_the_cpu_and_says_why_not_the_others():
    from merlib.bench import step_choice_effects
    from merlib.runtime import CPU_FP32, STEP_CHOICES, Runtime

    for runtime, expected in ((CPU_FP32, {"fused_optimizer"}), (Runtime(torch.device("cpu"), "bf16"),
                                                                  {"channels_last", "fused_optimizer"})):  # fmt: skip
        result = step_choice_effects(paper_config(TINY_BENCH), runtime, frames=40, steps=1, rounds=1)
        assert set(result["step_choices"]) == set(STEP_CHOICES)
        measured = {name for name, ratio in result["step_choices"].items() if ratio is not None}
        assert measured == expected and all(result["step_choices"][name] > 0 for name in measured)
        assert set(result["step_choices_unmeasured"]) == set(STEP_CHOICES) - measured
        assert result["compile_warmup_s"] is None


def test_the_synthetic_corpus_has_iemocaps_shape_and_is_written_once(tmp_path):
    import soundfile

    from merlib.data.folds import make_fold
    from merlib.data.synthetic import generate_synthetic_corpus

    records = generate_synthetic_corpus(tmp_path, 20)
    assert len(records) == 20 and {r.fold for r in records} == {1, 2, 3, 4, 5}
    assert all(2.0 <= r.duration <= 8.0 for r in records)
    audio, rate = soundfile.read(tmp_path / records[0].wav, dtype="int16")
    assert rate == 16000 and audio.size == round(records[0].duration * rate)
    assert soundfile.info(tmp_path / records[0].wav).subtype == "PCM_16"
    fold = make_fold(records, 1)
    assert {u.fold for u in fold.test} == {1} and not {u.speaker for u in fold.test} & {u.speaker for u in fold.train}
    stamp = (tmp_path / "utterances.jsonl").stat().st_mtime_ns
    assert generate_synthetic_corpus(tmp_path, 20) == records
    assert (tmp_path / "utterances.jsonl").stat().st_mtime_ns == stamp  # kept, not written again


@pytest.mark.slow
def test_bench_fold_times_a_real_fold_phase_by_phase(tmp_path, monkeypatch, capsys):
    """`merlib bench fold` at a tiny scale: 20 synthetic utterances, the tests' tiny ResNet, one
    epoch of each stage; every phase timed, the wall beside (f)'s estimate."""
    import json

    from merlib.cli import main

    monkeypatch.setenv("MERLIB_DATA", str(tmp_path))
    tiny = ["features.n_mels=16", "speech.model.m_channels=2", "speech.model.embed_dim=16", "speech.probe_chunks=1",
            "speech.fine_tune.chunk_frames=[40, 60]", "speech.fine_tune.batch_size=8",
            "speech.linear_probe.batch_size=8"]  # fmt: skip
    argv = ["bench", "fold", "--json", "--utterances", "20", "--epochs", "1", "--config", "configs/paper.yaml",
            "--device", "cpu", "--precision", "fp32"] + [f"--set={assignment}" for assignment in tiny]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["utterances"] == 20 and (tmp_path / "synthetic-20" / "utterances.jsonl").is_file()
    assert result["epochs"] == {"lp": 1, "ft": 1} and result["config_epochs"] == {"lp": 20, "ft": 20}
    phases = result["phase_seconds"]
    assert set(phases) == {"features", "probe_vectors", "lp_epochs", "lp_scoring", "ft_epochs", "ft_scoring",
                           "ft_train"}  # fmt: skip
    assert all(seconds >= 0 for seconds in phases.values()) and 0 < phases["ft_train"] <= phases["ft_epochs"]
    assert 0 < result["speech_stages_s"] < result["wall_s"] < result["config_epochs_wall_s_projected"]
    assert result["estimate_s"] > 0 and 0 <= result["test_ua"] <= 1
