"""`merlib bench speech | text`: costs measured in one run on this machine, reported as ratios.

speech:
(a) loop_overhead_ratio: merlib's Trainer step time / a bare PyTorch loop's, same model, batch
    and input (the config's model; interleaved rounds, medians: the machine is shared and noisy);
(b) feature_speedup_vs_librosa: merlib's torchaudio log-mel vs librosa computing the same
    128-mel features, on utterances of IEMOCAP-like length (2–8 s);
(c) eval_60s_peak_rss_gib: peak resident memory of a fresh process that evaluates one 60 s
    utterance with the paper-config ResNet34;
(d) params_paper: parameters of the paper-config ResNet34 with a 4-class head;
(e) amp_speedup = step_seconds_fp32 / step_seconds_amp: one training step of the paper-config
    ResNet34 (batch 32 × 200 frames × 128 bins) in fp32 and under autocast (`amp_dtype`), same
    batch, interleaved, on `device`;
(f) paper_fold_hours_estimate: the projected wall of the speech stages of one configs/paper.yaml
    fold on that device (`paper_fold_estimate` says how it is computed);
(g) step_choices: each of the runtime's step choices (merlib.runtime.STEP_CHOICES) alone, as the
    step time without it / with it (above 1: faster), the config's model, same batch, interleaved;
    null where it cannot be measured here, with the reason in step_choices_unmeasured.
fold: one real speech fold (linear probe and fine-tuning of the config's first speech system, from
    random weights) on a synthetic corpus of IEMOCAP's size (merlib.data.synthetic), timed phase by
    phase, next to the estimate of (f) for the same fold shape (`bench_fold`).
text: (a) on the config's text model, (e) and (f) on a bert-base-sized BERT (random weights: the
time of a step depends on the architecture, not on the values of the weights).
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from merlib.config import Config, paper_config
from merlib.runtime import AMP_DTYPES, CPU_FP32_CHANNELS_LAST, Runtime, runtime_for

# IEMOCAP under the paper's protocol (configs/paper.yaml, data_manifests/iemocap): utterances, LOSO test sizes and
# mean duration (s); the hold-out is data.holdout_fraction of the training sessions.
IEMOCAP_UTTERANCES = 5531
IEMOCAP_TEST_SIZES = (1085, 1023, 1151, 1031, 1241)
IEMOCAP_MEAN_SECONDS = 4.5


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _synchronized(runtime: Runtime, function):
    """`function` then wait for the device, so a timer sees the work and not its launch."""

    def run():
        function()
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)

    return run


def compare_loops(
    model: torch.nn.Module, optimizer, inputs, targets, steps: int, rounds: int, runtime: Runtime | None = None
) -> dict:
    """Step time of merlib's Trainer against a bare PyTorch loop on the same model and batch."""
    from merlib.runtime import CPU_FP32
    from merlib.train.loop import Trainer, default_forward

    runtime = runtime or CPU_FP32
    trainer = Trainer(model, optimizer, progress=False, runtime=runtime)

    def bare():  # a plain loop as one would write it: the batch is copied to the device every step
        model.train()
        for _ in range(steps):
            device_inputs, device_targets = runtime.to_device(inputs), runtime.to_device(targets)
            with runtime.autocast():
                logits = default_forward(model, device_inputs)
            loss = torch.nn.functional.cross_entropy(logits.float(), device_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def merlib_loop():
        trainer.run_epoch(0, [(inputs, targets)] * steps)

    bare, merlib_loop = _synchronized(runtime, bare), _synchronized(runtime, merlib_loop)
    bare()  # warm-up (allocator, kernels)
    bare_times, merlib_times = [], []
    for _ in range(rounds):  # interleaved, so drifts in machine load hit both
        bare_times.append(_median_seconds(bare, 1) / steps)
        merlib_times.append(_median_seconds(merlib_loop, 1) / steps)
    bare_step, merlib_step = statistics.median(bare_times), statistics.median(merlib_times)
    return {
        "bare_step_s": round(bare_step, 4),
        "merlib_step_s": round(merlib_step, 4),
        "loop_overhead_ratio": round(merlib_step / bare_step, 3),
    }


def amp_comparison(model: torch.nn.Module, optimizer, inputs, targets, runtime: Runtime, rounds: int = 2) -> dict:
    """One training step through merlib's loop in fp32 and under autocast, same model and batch,
    interleaved rounds (medians). The autocast dtype is the runtime's, or bf16 when it runs fp32."""
    from merlib.train.loop import Trainer

    amp = runtime.precision if runtime.precision in AMP_DTYPES else "bf16"
    trainers = {}
    for precision in ("fp32", amp):
        trainer = Trainer(model, optimizer, progress=False, runtime=Runtime(runtime.device, precision))
        trainers[precision] = _synchronized(runtime, lambda t=trainer: t.run_epoch(0, [(inputs, targets)]))
    times = {precision: [] for precision in trainers}
    for run in trainers.values():
        run()  # warm-up of each precision's kernels
    for _ in range(rounds):
        for precision, run in trainers.items():
            times[precision].append(_median_seconds(run, 1))
    fp32, mixed = statistics.median(times["fp32"]), statistics.median(times[amp])
    return {
        "device": str(runtime.device),
        "amp_dtype": amp,
        "step_seconds_fp32": round(fp32, 4),
        "step_seconds_amp": round(mixed, 4),
        "amp_speedup": round(fp32 / mixed, 3),
    }


def iemocap_fold_sizes(holdout_fraction: float) -> dict:
    """Mean sizes of a paper fold: training segments (after the hold-out), hold-out, test."""
    test = sum(IEMOCAP_TEST_SIZES) / len(IEMOCAP_TEST_SIZES)
    train_sessions = IEMOCAP_UTTERANCES - test
    return {
        "train": train_sessions * (1 - holdout_fraction),
        "holdout": train_sessions * holdout_fraction,
        "test": test,
    }


def paper_fold_estimate(
    step_seconds: float, eval_seconds: float, config: Config | None = None, sizes: dict | None = None
) -> float:
    """Hours of the speech stages of one configs/paper.yaml fold, from a measured training step
    (32 × 200 frames) and a measured full-length evaluation of one 4.5 s utterance:

    - linear probe: one pass of the frozen network over every training segment and its
      augmented copies, the hold-out and the test set (the probe's FC epochs are negligible);
    - fine-tuning: epochs × ceil(train × (1 + copies) / batch) steps, each scaled from 200 frames
      to the mean of chunk_frames (cost is linear in frames), plus a hold-out evaluation per epoch
      and the start, and the test set once.

    `sizes` (train, holdout, test utterances): another fold's; default a mean IEMOCAP fold.
    """
    config = config or paper_config()
    sizes = sizes or iemocap_fold_sizes(config.data.holdout_fraction)
    stage = config.speech.fine_tune
    copies = config.augment.copies
    probe = (sizes["train"] * (1 + copies) + sizes["holdout"] + sizes["test"]) * eval_seconds
    steps = stage.epochs * math.ceil(sizes["train"] * (1 + copies) / stage.batch_size)
    chunk_scale = statistics.mean(stage.chunk_frames) / 200
    fine_tune = (
        steps * step_seconds * chunk_scale + ((stage.epochs + 1) * sizes["holdout"] + sizes["test"]) * eval_seconds
    )
    return (probe + fine_tune) / 3600


def paper_text_fold_estimate(
    step_seconds: float, inference_seconds_per_32: float, config: Config | None = None
) -> float:
    """Hours of the text stage of one configs/paper.yaml fold: epochs × ceil(train / batch) steps
    of the measured 32-utterance step, and the hold-out scored every epoch and the test set once."""
    config = config or paper_config()
    sizes = iemocap_fold_sizes(config.data.holdout_fraction)
    steps = config.text.epochs * math.ceil(sizes["train"] / config.text.batch_size)
    scored = config.text.epochs * sizes["holdout"] + sizes["test"]
    return (steps * step_seconds + scored / 32 * inference_seconds_per_32) / 3600


def loop_overhead(config: Config, runtime: Runtime, steps: int = 4, rounds: int = 3, frames: int = 200) -> dict:
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier

    torch.manual_seed(0)
    model = Classifier(build_backbone(config), 4).to(runtime.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    inputs, targets = torch.randn(32, frames, config.features.n_mels), torch.randint(0, 4, (32,))
    result = compare_loops(model, optimizer, inputs, targets, steps, rounds, runtime)
    return result | {
        "loop_config": f"m_channels={config.speech.model.m_channels}, n_mels={config.features.n_mels}, 32x{frames}"
    }


def batched_evaluation(config: Config, runtime: Runtime, utterances: int = 48, repeats: int = 3) -> dict:
    """Whole-utterance evaluation of the config's speech model, utterances/s one at a time and in
    padded length-sorted batches (evaluate_full_length), alternated in one run; `eval_speedup` is
    their ratio. Lengths drawn as IEMOCAP's (2-8 s)."""
    from merlib.audio.dataset import evaluate_full_length
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier

    torch.manual_seed(0)
    model = Classifier(build_backbone(config), 4).to(runtime.device).eval()
    frames = np.random.default_rng(0).integers(200, 800, utterances)
    segments = [torch.randn(int(n), config.features.n_mels) for n in frames]
    one_at_a_time = _synchronized(runtime, lambda: evaluate_full_length(model, segments, runtime, max_frames=0))
    batched = _synchronized(runtime, lambda: evaluate_full_length(model, segments, runtime))
    batched()  # warm-up (allocations, cuDNN plans)
    seconds = {"one": [], "batched": []}
    for _ in range(repeats):
        seconds["one"].append(_median_seconds(one_at_a_time, 1))
        seconds["batched"].append(_median_seconds(batched, 1))
    one, many = float(np.median(seconds["one"])), float(np.median(seconds["batched"]))
    return {"eval_utterances_per_s_one_at_a_time": round(utterances / one, 2),
            "eval_utterances_per_s_batched": round(utterances / many, 2), "eval_speedup": round(one / many, 2),
            "eval_config": f"{config.speech.model.backbone}, m_channels={config.speech.model.m_channels}, "
                           f"n_mels={config.features.n_mels}, {utterances} utterances of 2-8 s"}  # fmt: skip


# Dense peak TFLOP/s of a device for the dtype a step runs in (the vendors' data sheets, without
# sparsity): MFU is achieved / peak. An fp32 run's convolutions use TF32 tensor cores when cuDNN
# allows them (PyTorch's default), so its peak is TF32's then. Unknown devices and CPUs: no MFU.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6},
}


def peak_tflops(runtime: Runtime) -> float | None:
    if runtime.device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(runtime.device)
    if runtime.precision in ("bf16", "fp16"):
        dtype = runtime.precision
    else:
        dtype = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    return next((peaks[dtype] for key, peaks in PEAK_TFLOPS.items() if key in name), None)


def step_flops(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> int:
    """FLOPs of one training step (forward and backward), counted by torch's FlopCounterMode
    (matrix multiplications and convolutions; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = torch.nn.functional.cross_entropy(model(inputs).float(), targets)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def data_path_stall(model: torch.nn.Module, config: Config, runtime: Runtime, steps: int) -> dict:
    """Training steps/s through merlib's loop, fed two ways in one run: by the real data path
    (planned random chunks of in-memory features, SpecAugment copies, one epoch of `epoch_loader`
    with the runtime's workers, their start-up included, as every training epoch pays it) and by
    one batch already on the device, after a warm-up of the model; the stall fraction is the
    share of the real path's time the model waited for data."""
    from merlib.audio.dataset import ChunkBuilder, forward_masked, plan_chunk_batches, training_items
    from merlib.batches import epoch_loader
    from merlib.train.common import build_augmenters
    from merlib.train.loop import Trainer

    stage = config.speech.fine_tune
    rng = np.random.default_rng(0)
    segments = stage.batch_size * steps // (1 + config.augment.copies) + stage.batch_size
    features = [torch.randn(int(n), config.features.n_mels) for n in rng.integers(200, 800, segments)]
    labels = rng.integers(0, 4, segments).tolist()
    augmenters = build_augmenters(config)
    items = training_items(len(features), config.augment.copies)
    plan = plan_chunk_batches([len(f) for f in features], items, stage.batch_size, stage.chunk_frames, rng,
                              len(augmenters))[:steps]  # fmt: skip
    loader = epoch_loader(plan, ChunkBuilder(features, labels, augmenters), runtime)
    inputs, targets = ChunkBuilder(features, labels, augmenters)(plan[0])
    resident = [(runtime.to_device(inputs), runtime.to_device(targets))] * len(plan)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    trainer = Trainer(model, optimizer, progress=False, runtime=runtime, forward=forward_masked)
    timed = {}
    trainer.run_epoch(0, resident[:2])  # warm-up: allocations, kernels, cuDNN plans
    for name, batches in (("loader", loader), ("resident", resident)):
        timed[name] = _median_seconds(_synchronized(runtime, lambda b=batches: trainer.run_epoch(0, b)), 1)
    return {
        "steady_steps": len(plan),
        "steps_per_s_data_path": round(len(plan) / timed["loader"], 3),
        "steps_per_s_resident": round(len(plan) / timed["resident"], 3),
        "stall_fraction": round(max(0.0, 1 - timed["resident"] / timed["loader"]), 3),
    }


def paper_speech_steps(runtime: Runtime, frames: int = 200) -> dict:
    """(e) and (f) on the paper-config ResNet34."""
    from merlib.audio.dataset import evaluate_full_length
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier

    paper = paper_config()
    torch.manual_seed(0)
    model = Classifier(build_backbone(paper), 4).to(runtime.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    inputs, targets = torch.randn(32, frames, paper.features.n_mels), torch.randint(0, 4, (32,))
    result = amp_comparison(model, optimizer, inputs, targets, runtime)
    utterance = [torch.randn(int(IEMOCAP_MEAN_SECONDS * 100), paper.features.n_mels)]
    evaluate = _synchronized(runtime, lambda: evaluate_full_length(model, utterance, runtime))
    evaluate()
    eval_seconds = _median_seconds(evaluate, 5)
    step = result["step_seconds_amp"] if runtime.amp_dtype else result["step_seconds_fp32"]
    flops = step_flops(model, runtime.to_device(inputs), runtime.to_device(targets))
    achieved = flops / step / 1e12
    peak = peak_tflops(runtime)
    return result | {
        "precision": runtime.precision,
        "step_gflop_counted": round(flops / 1e9, 1),
        "achieved_tflops": round(achieved, 3),
        "peak_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None,
        "eval_seconds_4_5s_utterance": round(eval_seconds, 4),
        "paper_fold_hours_estimate": round(paper_fold_estimate(step, eval_seconds), 3),
    }


_FEATURE_TIMING = """
import sys, time
import numpy as np
which, utterances, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
waves = [rng.normal(0, 0.1, int(16000 * rng.uniform(2, 8))).astype(np.float32) for _ in range(utterances)]
from merlib.config import paper_config
c = paper_config().features
if which == "merlib":
    import torch
    from merlib.audio.features import LogMel
    front_end, tensors = LogMel(c), [torch.from_numpy(w) for w in waves]
    def run():
        with torch.no_grad():
            for w in tensors:
                front_end(w)
else:
    import librosa
    def run():
        for w in waves:
            mel = librosa.feature.melspectrogram(y=w, sr=16000, n_fft=c.n_fft, win_length=400, hop_length=160,
                                                 window="hamming", n_mels=c.n_mels, power=2.0, htk=True, norm=None)
            log_mel = np.log(np.maximum(mel, c.log_floor)).T
            (log_mel - log_mel.mean(0)) / np.maximum(log_mel.std(0), c.std_floor)
run()
times = []
for _ in range(5):
    started = time.perf_counter()
    run()
    times.append(time.perf_counter() - started)
print(min(times), sum(len(w) for w in waves) / 16000)
"""


def feature_speed(utterances: int = 30, seed: int = 0) -> dict:
    """Each implementation timed in a fresh process of its own: BLAS and OpenMP worker threads
    of one library, still spinning after a call, would otherwise slow the other. Without
    librosa (a dev dependency) only merlib's real-time factor is measured."""
    import importlib.util

    which_ones = ("merlib", "librosa") if importlib.util.find_spec("librosa") else ("merlib",)
    best = {}
    for _ in range(2):
        for which in which_ones:
            command = [sys.executable, "-c", _FEATURE_TIMING, which, str(utterances), str(seed)]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
            seconds, audio_seconds = float(output[0]), float(output[1])
            best[which] = min(best.get(which, seconds), seconds)
    librosa = best.get("librosa")
    return {
        "feature_rtf_merlib": round(audio_seconds / best["merlib"], 1),
        # the unit: how long extraction of a corpus takes (VoxCeleb2: ~2,400 audio hours)
        "feature_audio_hours_per_s": round(audio_seconds / best["merlib"] / 3600, 4),
        "feature_rtf_librosa": round(audio_seconds / librosa, 1) if librosa else None,
        "feature_speedup_vs_librosa": round(librosa / best["merlib"], 2) if librosa else None,
    }


# VmHWM (peak RSS of this process image) rather than ru_maxrss, which Linux carries over from
# the parent through fork + exec and so would count the benchmark's own memory.
_EVAL_60S = """
import torch
from merlib.config import paper_config
from merlib.models.resnet import Classifier
from merlib.models.backbones import build_backbone
torch.set_num_threads(2)
model = Classifier(build_backbone(paper_config()), 4).eval()
with torch.no_grad():
    model(torch.randn(1, 6001, 128))
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


def eval_memory() -> dict:
    output = subprocess.run([sys.executable, "-c", _EVAL_60S], capture_output=True, text=True, check=True).stdout
    return {"eval_60s_peak_rss_gib": round(int(output.split()[-1]) / 2**20, 3)}


def paper_parameters() -> dict:
    from merlib.config import paper_config
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier, count_parameters

    return {"params_paper": count_parameters(Classifier(build_backbone(paper_config()), 4))}


CHOICES_UNMEASURED_OFF_CUDA = {
    "cudnn_benchmark": "no cuDNN without CUDA",
    # measured: 117 s to compile the tests' tiny ResNet's step on this 2-core CPU (tests/test_runtime.py)
    "compile": "compiling the step takes minutes without CUDA (inductor's C++ kernels on the CPU); auto leaves it off",
}


def step_choice_effects(config: Config, runtime: Runtime, frames: int = 200, steps: int | None = None,
                        rounds: int = 3) -> dict:  # fmt: skip
    """(g): each step choice alone against the default step (every choice off), the config's model
    with a 4-class head, one batch of fine_tune.batch_size × `frames` already on the device, the
    same weights for all; interleaved rounds of `steps` steps (medians). Compiling happens in the
    warm-up (its seconds: compile_warmup_s). Where `auto` takes several, `auto` is them together.
    drop_ragged_batch is not a step-time choice: it is reported as what it leaves out of a paper
    fold's epoch."""
    import copy

    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier
    from merlib.runtime import STEP_CHOICES
    from merlib.train.loop import Trainer

    steps = steps or (20 if runtime.device.type == "cuda" else 2)
    batch = config.speech.fine_tune.batch_size
    torch.manual_seed(0)
    base = Classifier(build_backbone(config), 4).to(runtime.device)
    inputs = runtime.to_device(torch.randn(batch, frames, config.features.n_mels))
    targets = runtime.to_device(torch.randint(0, 4, (batch,)))
    unmeasured = {}
    if runtime.device.type != "cuda":
        unmeasured |= CHOICES_UNMEASURED_OFF_CUDA
    if runtime.device.type == "cpu" and runtime.precision == "fp32":
        unmeasured["channels_last"] = CPU_FP32_CHANNELS_LAST
    paper = paper_config()
    items = round(iemocap_fold_sizes(paper.data.holdout_fraction)["train"] * (1 + paper.augment.copies))
    ragged = items % paper.speech.fine_tune.batch_size
    unmeasured["drop_ragged_batch"] = (
        f"not a step-time choice: it leaves out an epoch's last, partial batch ({ragged} of ~{items} chunks of a "
        "paper fold), one shape fewer to compile and tune for"
    )
    variants = {"default": {}} | {name: {name: True} for name in STEP_CHOICES if name not in unmeasured}
    auto = {name: True for name, on in runtime.step_choices().items() if on and name not in unmeasured}
    if len(auto) > 1:
        variants["auto"] = auto  # together, as `auto` takes them on this device
    runs, compile_seconds = {}, None
    for name, choices in variants.items():
        model = copy.deepcopy(base)
        variant = Runtime(runtime.device, runtime.precision, **choices)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, fused=variant.fused_optimizer or None)
        trainer = Trainer(model, optimizer, progress=False, runtime=variant, compile_shapes=1)
        trainer.train_model = trainer.training_model()
        run = _synchronized(runtime, lambda t=trainer: t.run_epoch(0, [(inputs, targets)] * steps))
        started = time.perf_counter()
        run()  # warm-up: allocations, cuDNN plans, compilation
        if name == "compile":
            compile_seconds = round(time.perf_counter() - started, 1)
        runs[name] = run
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            seconds[name].append(_median_seconds(run, 1) / steps)
    step = {name: statistics.median(values) for name, values in seconds.items()}
    ratios = {name: None for name in STEP_CHOICES} | {
        name: round(step["default"] / value, 3) for name, value in step.items() if name != "default"
    }
    return {
        "step_choices": ratios,
        "step_choices_default_step_s": round(step["default"], 4),
        "step_choices_unmeasured": unmeasured,
        "step_choices_batch": f"{batch}x{frames}, {runtime.precision}, {steps} steps x {rounds} rounds",
        "compile_warmup_s": compile_seconds,
    }


def bench_speech(config: Config, steady_steps: int | None = None) -> dict:
    """`steady_steps`: steps of the data-path comparison (default: 100 on a GPU, 8 on a CPU,
    where a paper-size step takes seconds)."""
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier

    runtime = runtime_for(config)
    torch.manual_seed(0)
    model = Classifier(build_backbone(config), 4).to(runtime.device)
    steps = steady_steps or (100 if runtime.device.type == "cuda" else 8)
    result = data_path_stall(model, config, runtime, steps)
    result |= loop_overhead(config, runtime)
    result |= batched_evaluation(config, runtime)
    result |= feature_speed()
    result |= eval_memory()
    result |= paper_parameters()
    result |= paper_speech_steps(runtime)
    result |= step_choice_effects(config, runtime)
    return result


def _step_and_eval_seconds(config: Config, runtime: Runtime, frames: int = 200) -> tuple[float, float]:
    """What (f) measures, on the config's model: one training step of 32 × `frames` through the
    Trainer, and the evaluation of one 4.5 s utterance (medians after a warm-up)."""
    from merlib.audio.dataset import evaluate_full_length
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier
    from merlib.train.loop import Trainer

    torch.manual_seed(0)
    model = Classifier(build_backbone(config), 4).to(runtime.device)
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9), progress=False, runtime=runtime
    )
    batch = [(torch.randn(32, frames, config.features.n_mels), torch.randint(0, 4, (32,)))]
    step = _synchronized(runtime, lambda: trainer.run_epoch(0, batch))
    utterance = [torch.randn(int(IEMOCAP_MEAN_SECONDS * 100), config.features.n_mels)]
    evaluate = _synchronized(runtime, lambda: evaluate_full_length(model, utterance, runtime))
    step(), evaluate()
    return _median_seconds(step, 3), _median_seconds(evaluate, 3)


def _steady_epoch_seconds(summary: dict | None, timings: dict, stage: str) -> float:
    """One more epoch of a stage, as the measured ones ran after the first (whose steps also
    compiled the graphs and tuned cuDNN's algorithms), with its share of the hold-out evaluations
    (the start's and one per epoch for fine-tuning, one per epoch for the probe)."""
    if summary is None:
        return 0.0
    seconds = [row["seconds"] for row in summary["history"]]
    steady = seconds[1:] or seconds
    evaluations = len(seconds) + (1 if summary.get("start") else 0)
    evaluation = max(0.0, timings[f"{stage}_epochs"] - sum(seconds)) / evaluations
    return sum(steady) / len(steady) + evaluation


def bench_fold(config: Config, utterances: int = IEMOCAP_UTTERANCES, epochs: int | None = None,
               data_dir: str | pathlib.Path | None = None, progress: bool = False) -> dict:  # fmt: skip
    """One real speech fold, timed: fold 1 of leave-one-session-out on a synthetic corpus of
    `utterances` (default IEMOCAP's 5531, in 5 sessions; written once under `data_dir`, default
    the data dir's synthetic-<n>/), the config's first speech system with both stages, from random weights
    (speech.pretrained.source: none: the cost does not depend on the weights), features computed
    afresh. `epochs` replaces both stages' epochs (to fit a time budget); the fold's wall at the
    config's epochs is then projected from the measured ones, each further epoch as long as the
    measured ones after the first (`config_epochs_wall_s_projected`).
    Phases (seconds): features, probe_vectors (the frozen network's pass), lp_epochs, lp_scoring,
    ft_epochs (of which ft_train: the training steps, the rest hold-out evaluations), ft_scoring.
    Beside them, estimate_s: (f)'s estimate for this fold's sizes and epochs from a measured step
    and evaluation, to compare with speech_stages_s (the wall less the features, which (f) leaves
    out: a corpus's features are computed once for all folds)."""
    import dataclasses
    import tempfile

    from merlib.config import ConfigError, _merge
    from merlib.data.demo import default_data_dir
    from merlib.data.folds import make_fold
    from merlib.data.synthetic import generate_synthetic_corpus
    from merlib.train.speech import run_speech_fold

    speech_systems = [s for s in config.systems_of("speech") if s.stages == ["lp", "ft"]]
    if not speech_systems:
        raise ConfigError(f"merlib bench fold times a speech system's probe and fine-tuning; config {config.name!r} "
                          "has no speech system with stages [lp, ft] (configs/paper.yaml has one)")  # fmt: skip
    system = speech_systems[0].name
    configured = config.system_config(system).speech
    speech = dataclasses.replace(config.speech, pretrained=dataclasses.replace(config.speech.pretrained, source="none"))
    config = dataclasses.replace(config, speech=speech, data=dataclasses.replace(config.data, folds=[1]))
    if epochs:
        config = dataclasses.replace(config, systems=[
            dataclasses.replace(s, overrides=_merge(s.overrides, {"speech": {"linear_probe": {"epochs": epochs},
                                                                              "fine_tune": {"epochs": epochs}}}))
            if s.name == system else s for s in config.systems])  # fmt: skip
    resolved = config.system_config(system)
    runtime = runtime_for(config)
    root = pathlib.Path(data_dir or default_data_dir() / f"synthetic-{utterances}")
    started = time.perf_counter()
    records = generate_synthetic_corpus(root, utterances, labels=config.labels)
    generated = time.perf_counter() - started
    data = config.data
    fold = make_fold(records, 1, data.holdout, data.holdout_fraction, config.seed)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        results = run_speech_fold(config, system, fold, root, pathlib.Path(work) / "run", pathlib.Path(work) / "cache",
                                  progress=progress, runtime=runtime, timings=timings)  # fmt: skip
        wall = time.perf_counter() - started
    ft_train = sum(row["seconds"] for row in results["ft"]["history"])
    phases = {name: round(value, 3) for name, value in timings.items()} | {"ft_train": round(ft_train, 3)}
    sizes = {"train": len(fold.train), "holdout": len(fold.holdout), "test": len(fold.test)}
    step, evaluation = _step_and_eval_seconds(resolved, runtime)
    stages = {"lp": resolved.speech.linear_probe.epochs, "ft": resolved.speech.fine_tune.epochs}
    at_config = {"lp": configured.linear_probe.epochs, "ft": configured.fine_tune.epochs}
    more = {k: (at_config[k] - stages[k]) * _steady_epoch_seconds(results.get(k), timings, k) for k in stages}
    projected = wall + sum(more.values())
    return {
        "device": runtime.describe()["device_name"],
        "precision": runtime.precision,
        "step_choices": runtime.step_choices(),
        "system": f"{system}: {resolved.speech.model.backbone}, m_channels={resolved.speech.model.m_channels}, "
        f"n_mels={resolved.features.n_mels}, random weights",
        "utterances": utterances,
        "audio_hours": round(sum(r.duration for r in records) / 3600, 2),
        "fold_sizes": sizes,
        "epochs": stages,
        "corpus_generation_s": round(generated, 1),
        "phase_seconds": phases,
        "wall_s": round(wall, 2),
        "speech_stages_s": round(wall - timings["features"], 2),
        "estimate_s": round(paper_fold_estimate(step, evaluation, resolved, sizes) * 3600, 2),
        "estimate_inputs": {"step_s_32x200": round(step, 4), "eval_s_4_5s_utterance": round(evaluation, 4)},
        "config_epochs": at_config,
        "config_epochs_wall_s_projected": round(projected, 2),
        "config_epochs_hours_projected": round(projected / 3600, 3),
        "test_ua": round(results["ft"]["test_ua"], 4),
    }


def _text_batch(tokens: int) -> tuple[dict, torch.Tensor]:
    inputs = {
        "input_ids": torch.randint(1000, 20000, (32, tokens)),
        "attention_mask": torch.ones(32, tokens, dtype=torch.long),
    }
    return inputs, torch.randint(0, 4, (32,))


def bench_text(config: Config, steps: int = 3, rounds: int = 3, tokens: int = 48) -> dict:
    """Train-step time of merlib's loop vs a bare transformers + PyTorch loop (the config's text
    model, batch 32 × `tokens`), its inference throughput, and (e), (f) on a bert-base-sized BERT."""
    import transformers

    from merlib.models.text import load_text_classifier

    runtime = runtime_for(config)
    text = config.system_config(config.systems_of("text")[0].name).text if config.systems_of("text") else config.text
    torch.manual_seed(0)
    _, model = load_text_classifier(text.model, 4)
    model.to(runtime.device)
    inputs, targets = _text_batch(tokens)
    optimizer = torch.optim.Adam(model.parameters(), lr=text.lr)
    result = compare_loops(model, optimizer, inputs, targets, steps, rounds, runtime)
    model.eval()
    device_inputs = runtime.to_device(inputs)
    with torch.no_grad(), runtime.autocast():
        inference = _median_seconds(_synchronized(runtime, lambda: model(**device_inputs)), 5)
    # the paper's model size: bert-base-uncased's architecture (transformers' BertConfig defaults)
    paper_model = transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=4)).to(runtime.device)
    paper_optimizer = torch.optim.Adam(paper_model.parameters(), lr=2e-5)
    amp = amp_comparison(paper_model, paper_optimizer, inputs, targets, runtime)
    paper_model.eval()
    with torch.no_grad(), runtime.autocast():
        paper_inference = _median_seconds(_synchronized(runtime, lambda: paper_model(**device_inputs)), 3)
    step = amp["step_seconds_amp"] if runtime.amp_dtype else amp["step_seconds_fp32"]
    return {
        "model": text.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        **result,
        "inference_utts_per_s": round(32 / inference, 1),
        "batch": f"32x{tokens} tokens",
        **amp,
        "precision": runtime.precision,
        "amp_model": f"bert-base ({sum(p.numel() for p in paper_model.parameters())} parameters, random weights)",
        "paper_fold_hours_estimate": round(paper_text_fold_estimate(step, paper_inference), 3),
    }


def ssl_fold_estimate(pass_seconds_per_audio_second: float, step_seconds: float, config: Config,
                      system: str) -> float:  # fmt: skip
    """Hours of the speech stages of one IEMOCAP fold of an ssl system of `config`, from a measured
    frozen pass (seconds per second of audio) and training step (fine_tune.batch_size chunks of
    the mean of chunk_frames): the probe's one frozen pass over every utterance (its epochs on
    cached vectors are negligible), then epochs × ceil(train / batch) steps, the hold-out scored
    at the start and every epoch, the test set once (a training-mode pass costs about as much)."""
    resolved = config.system_config(system)
    sizes = iemocap_fold_sizes(config.data.holdout_fraction)
    audio = {split: count * IEMOCAP_MEAN_SECONDS for split, count in sizes.items()}
    stage = resolved.speech.fine_tune
    probe = sum(audio.values()) * pass_seconds_per_audio_second
    steps = stage.epochs * math.ceil(sizes["train"] / stage.batch_size)
    scored = ((stage.epochs + 1) * audio["holdout"] + audio["test"]) * pass_seconds_per_audio_second
    return (probe + steps * step_seconds + scored) / 3600


def bench_ssl(config: Config, utterances: int = 4, seconds: float = 4.5, batch: int = 4, rounds: int = 2,
              shape: dict | None = None) -> dict:  # fmt: skip
    """A base-size self-supervised encoder (transformers' WavLMConfig defaults: the shape of
    microsoft/wavlm-base-plus, random weights): its frozen pass over `utterances` of `seconds`
    one at a time, and one fine-tuning step of `batch` 3 s chunks (the CNN frozen), measured;
    then, from those rates, an estimate of a configs/ssl.yaml fold (labelled as such)."""
    import tempfile

    import transformers

    from merlib.config import load_config
    from merlib.models.resnet import Classifier
    from merlib.models.ssl import SSLBackbone
    from merlib.train.common import frame_and_segment_parameters

    runtime = runtime_for(config)
    with tempfile.TemporaryDirectory() as folder:
        transformers.WavLMConfig(**(shape or {})).save_pretrained(folder)  # shape: a tiny one for the tests
        torch.manual_seed(0)
        model = Classifier(SSLBackbone(folder, 256, pretrained=False), 4).to(runtime.device)
    waves = [runtime.to_device(torch.randn(1, int(seconds * 16000), 1) * 0.1) for _ in range(utterances)]
    model.eval()

    def frozen_pass():
        with torch.no_grad(), runtime.autocast():
            for wave in waves:
                model.backbone.pooled(wave)

    pass_seconds = _median_seconds(_synchronized(runtime, frozen_pass), rounds) / (utterances * seconds)
    model.train()
    frame, segment = frame_and_segment_parameters(model)
    optimizer = torch.optim.Adam([{"params": frame, "lr": 2e-5}, {"params": segment, "lr": 1e-4}])
    chunks = runtime.to_device(torch.randn(batch, 48000, 1) * 0.1)
    targets = runtime.to_device(torch.randint(0, 4, (batch,)))

    def step():
        optimizer.zero_grad(set_to_none=True)
        with runtime.autocast():
            loss = torch.nn.functional.cross_entropy(model(chunks).float(), targets)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, cuDNN plans
    step_seconds = _median_seconds(_synchronized(runtime, step), rounds)
    ssl_config = load_config(pathlib.Path(__file__).resolve().parent.parent / "configs" / "ssl.yaml")
    stage = ssl_config.system_config("wavlm").speech.fine_tune
    scaled = step_seconds * stage.batch_size / batch  # a step's cost is linear in the batch
    return {
        "model": f"WavLM base shape ({sum(p.numel() for p in model.backbone.encoder.parameters())} parameters, "
        "random weights)",  # fmt: skip
        "device": runtime.describe().get("device_name", str(runtime.device)),
        "precision": runtime.precision,
        "frozen_pass_seconds_per_audio_second": round(pass_seconds, 4),
        f"train_step_seconds_{batch}x3s": round(step_seconds, 3),
        "ssl_yaml_fold_hours_estimate": round(ssl_fold_estimate(pass_seconds, scaled, ssl_config, "wavlm"), 2),
    }


def main(kind: str, as_json: bool, config: Config, **options) -> int:
    result = {"speech": bench_speech, "text": bench_text, "ssl": bench_ssl, "fold": bench_fold}[kind](config, **options)
    if as_json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0
