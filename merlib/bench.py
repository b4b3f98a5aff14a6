"""`merlib bench speech`: costs measured in one run on this machine, reported as ratios.

(a) loop_overhead_ratio: merlib's Trainer step time / a bare PyTorch loop's, same model, batch
    and input (interleaved rounds, medians: the machine is shared and noisy);
(b) feature_speedup_vs_librosa: merlib's torchaudio log-mel vs librosa computing the same
    128-mel features, on utterances of IEMOCAP-like length (2–8 s);
(c) eval_60s_peak_rss_gib: peak resident memory of a fresh process that evaluates one 60 s
    utterance with the paper-config ResNet34;
(d) params_paper: parameters of the paper-config ResNet34 with a 4-class head.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch

from merlib.config import Config


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare_loops(model: torch.nn.Module, optimizer, inputs, targets, steps: int, rounds: int) -> dict:
    """Step time of merlib's Trainer against a bare PyTorch loop on the same model and batch."""
    from merlib.train.loop import Trainer, default_forward

    trainer = Trainer(model, optimizer, progress=False)

    def bare():
        model.train()
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(default_forward(model, inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def merlib_loop():
        trainer.run_epoch(0, [(inputs, targets)] * steps)

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


def loop_overhead(config: Config, steps: int = 4, rounds: int = 3, frames: int = 200) -> dict:
    from merlib.models.resnet import Classifier
    from merlib.train.common import build_backbone

    torch.manual_seed(0)
    model = Classifier(build_backbone(config), 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    result = compare_loops(
        model, optimizer, torch.randn(32, frames, config.features.n_mels), torch.randint(0, 4, (32,)), steps, rounds
    )
    return result | {
        "loop_config": f"m_channels={config.speech.model.m_channels}, n_mels={config.features.n_mels}, 32x{frames}"
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
    of one library, still spinning after a call, would otherwise slow the other."""
    best = {}
    for _ in range(2):
        for which in ("merlib", "librosa"):
            output = subprocess.run(
                [sys.executable, "-c", _FEATURE_TIMING, which, str(utterances), str(seed)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            seconds, audio_seconds = float(output[0]), float(output[1])
            best[which] = min(best.get(which, seconds), seconds)
    return {
        "feature_rtf_merlib": round(audio_seconds / best["merlib"], 1),
        "feature_rtf_librosa": round(audio_seconds / best["librosa"], 1),
        "feature_speedup_vs_librosa": round(best["librosa"] / best["merlib"], 2),
    }


# VmHWM (peak RSS of this process image) rather than ru_maxrss, which Linux carries over from
# the parent through fork + exec and so would count the benchmark's own memory.
_EVAL_60S = """
import torch
from merlib.config import paper_config
from merlib.models.resnet import Classifier
from merlib.train.common import build_backbone
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
    from merlib.models.resnet import Classifier, count_parameters
    from merlib.train.common import build_backbone

    return {"params_paper": count_parameters(Classifier(build_backbone(paper_config()), 4))}


def bench_speech(config: Config) -> dict:
    result = {}
    result |= loop_overhead(config)
    result |= feature_speed()
    result |= eval_memory()
    result |= paper_parameters()
    return result


def bench_text(config: Config, steps: int = 3, rounds: int = 3, tokens: int = 48) -> dict:
    """Train-step time of merlib's loop vs a bare transformers + PyTorch loop (same model, batch
    32 × `tokens`), and inference throughput in utterances per second."""
    from merlib.models.text import load_text_classifier

    text = config.system_config(config.systems_of("text")[0].name).text if config.systems_of("text") else config.text
    torch.manual_seed(0)
    _, model = load_text_classifier(text.model, 4)
    inputs = {
        "input_ids": torch.randint(1000, 20000, (32, tokens)),
        "attention_mask": torch.ones(32, tokens, dtype=torch.long),
    }
    targets = torch.randint(0, 4, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=text.lr)
    result = compare_loops(model, optimizer, inputs, targets, steps, rounds)
    model.eval()
    with torch.no_grad():
        inference = _median_seconds(lambda: model(**inputs), 5)
    return {
        "model": text.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        **result,
        "inference_utts_per_s": round(32 / inference, 1),
        "batch": f"32x{tokens} tokens",
    }


def main(kind: str, as_json: bool, config: Config) -> int:
    result = {"speech": bench_speech, "text": bench_text}[kind](config)
    if as_json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0
