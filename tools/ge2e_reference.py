"""Compute the GE2E reference embedding of the test signal with resemblyzer's *own* code.

Run once (needs librosa; resemblyzer installed --no-deps): `.venv/bin/python tools/ge2e_reference.py`.
It writes tests/data/ge2e_reference.npy, which tests/test_ge2e.py compares with merlib's
re-implementation. resemblyzer imports webrtcvad (for silence trimming, which this reference
does not use) and scipy.ndimage.morphology (gone from recent SciPy): both are stubbed here.
"""

import pathlib
import sys
import types

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.modules.setdefault("webrtcvad", types.ModuleType("webrtcvad"))
try:
    import scipy.ndimage.morphology  # noqa: F401
except ImportError:
    import scipy.ndimage

    sys.modules["scipy.ndimage.morphology"] = scipy.ndimage

from ge2e_fixture import ge2e_test_signal  # noqa: E402
from resemblyzer import VoiceEncoder  # noqa: E402
from resemblyzer.audio import normalize_volume  # noqa: E402

encoder = VoiceEncoder(device="cpu", verbose=False)
wav = normalize_volume(ge2e_test_signal(), -30, increase_only=True)  # preprocess_wav without the VAD trim
embedding = encoder.embed_utterance(wav)
out = ROOT / "tests" / "data" / "ge2e_reference.npy"
np.save(out, embedding.astype(np.float32))
print(f"wrote {out}: shape {embedding.shape}, norm {np.linalg.norm(embedding):.4f}")
