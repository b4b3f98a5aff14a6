"""A deterministic 3 s voiced test signal (harmonics with vibrato and noise), 16 kHz float32:
the input of the GE2E reference-embedding check (no espeak-ng, so it never changes)."""

import numpy as np


def ge2e_test_signal(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 140 + 25 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k**1.2 for k in range(1, 25))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t) ** 2
    return (0.1 * envelope * voice + 0.003 * rng.normal(size=t.shape)).astype(np.float32)
