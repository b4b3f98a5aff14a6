"""Log-mel front end, SpecAugment and bad-audio errors."""

import dataclasses

import numpy as np
import pytest
import soundfile
import torch

from merlib.audio import features as F
from merlib.audio.augment import SpecAugment, mask_features, scaled_freq_width
from merlib.audio.feature_store import FeatureCache
from merlib.config import MaskPolicy, paper_config

PAPER = paper_config()


def features_config(**changes):
    return dataclasses.replace(PAPER.features, **changes)


def write_wav(path, seconds=1.0, rate=16000, channels=1, seed=0, subtype="PCM_16"):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * t)) + 0.01 * rng.normal(size=t.shape)
    audio = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    soundfile.write(str(path), audio, rate, subtype=subtype)
    return path


def test_shapes_and_per_bin_normalisation(tmp_path):
    waveform = F.load_audio(write_wav(tmp_path / "a.wav", seconds=2.0))
    log_mel = F.LogMel(PAPER.features)(waveform)
    assert log_mel.shape == (201, 128)  # 10 ms hop, centred frames
    assert torch.allclose(log_mel.mean(0), torch.zeros(128), atol=1e-4)
    assert torch.allclose(log_mel.std(0, unbiased=False), torch.ones(128), atol=1e-3)


def test_empty_mel_filters_give_no_nan_or_inf():
    config = features_config(n_fft=512)  # 128 filters over 257 bins: some low filters are empty
    with pytest.warns(UserWarning, match="empty filters"):
        front_end = F.LogMel(config)
    for waveform in (torch.zeros(16000), torch.randn(16000) * 1e-3, torch.randn(400)):
        out = front_end(waveform)
        assert torch.isfinite(out).all()


def test_global_normalisation_keeps_spectral_shape(tmp_path):
    waveform = F.load_audio(write_wav(tmp_path / "a.wav"))
    out = F.LogMel(features_config(normalization="global", n_mels=64))(waveform)
    assert abs(out.mean().item()) < 1e-4 and abs(out.std(unbiased=False).item() - 1) < 1e-3
    assert out.mean(0).std() > 0.1  # per-bin means differ: tilt is kept


def test_stereo_is_downmixed_and_other_rates_resampled_once(tmp_path):
    stereo = F.load_audio(write_wav(tmp_path / "s.wav", channels=2))
    assert stereo.dim() == 1 and stereo.shape[0] == 16000
    F._RESAMPLE_WARNED.discard(8000)
    with pytest.warns(UserWarning, match="8000 Hz audio is resampled to 16000 Hz"):
        low = F.load_audio(write_wav(tmp_path / "l.wav", rate=8000))
    assert low.shape[0] == 16000
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.load_audio(write_wav(tmp_path / "l2.wav", rate=8000))  # said once only


def test_bad_audio_errors_name_the_file(tmp_path):
    with pytest.raises(F.AudioError, match=r"missing\.wav: no such audio file"):
        F.load_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(F.AudioError, match=r"corrupt\.wav: unreadable audio"):
        F.load_audio(tmp_path / "corrupt.wav")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    with pytest.raises(F.AudioError, match=r"empty\.wav: empty audio"):
        F.load_audio(tmp_path / "empty.wav")
    soundfile.write(str(tmp_path / "nan.wav"), np.full(1600, np.nan, dtype="float32"), 16000, subtype="FLOAT")
    with pytest.raises(F.AudioError, match=r"nan\.wav: audio is all NaN"):
        F.load_audio(tmp_path / "nan.wav")


def test_feature_cache_is_computed_once_and_keyed_by_config(tmp_path):
    write_wav(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache", tmp_path, features_config(n_mels=40))
    first = cache.get("utt", "a.wav")
    assert [p.suffix for p in sorted(cache.folder.glob("*-*"))] == [".ark", ".jsonl", ".scp"]  # one shard
    (tmp_path / "a.wav").unlink()  # a second read must not need the audio
    assert torch.equal(cache.get("utt", "a.wav"), first)
    other = FeatureCache(tmp_path / "cache", tmp_path, features_config(n_mels=64))
    assert other.folder != cache.folder


@pytest.mark.parametrize("name", ["conservative", "aggressive"])
def test_masks_stay_within_policy_limits_and_are_reproducible(name):
    policy = PAPER.augment.policies[name]
    augment = SpecAugment(policy)
    features = torch.randn(300, 128)
    for seed in range(20):
        masked, mask = mask_features(features, augment, generator_seed=seed)
        assert mask.all(dim=0).sum() <= policy.freq_masks * policy.freq_width  # masked bins
        assert mask.all(dim=1).sum() <= policy.time_masks * min(policy.time_width, 300 * policy.max_time_fraction)
        assert torch.equal(masked[mask], torch.zeros(int(mask.sum())))
        assert torch.equal(masked[~mask], features[~mask])
    again = mask_features(features, augment, generator_seed=5)
    assert torch.equal(again[1], mask_features(features, augment, generator_seed=5)[1])
    assert not torch.equal(again[1], mask_features(features, augment, generator_seed=6)[1])


def test_no_masks_policy_changes_nothing():
    augment = SpecAugment(MaskPolicy(freq_masks=0, freq_width=10, time_masks=0, time_width=10, max_time_fraction=1.0))
    features = torch.randn(50, 64)
    assert torch.equal(augment(features), features)


def test_frequency_mask_widths_scale_with_the_number_of_bins():
    aggressive = PAPER.augment.policies["aggressive"]
    assert scaled_freq_width(aggressive, 128) == 27 and scaled_freq_width(aggressive, 64) == 14
    assert scaled_freq_width(aggressive, 40) == 8
    augment = SpecAugment(aggressive, n_mels=64)
    features = torch.randn(300, 64)
    shares = []
    for seed in range(30):
        _, mask = mask_features(features, augment, generator_seed=seed)
        assert mask.all(dim=0).sum() <= aggressive.freq_masks * 14
        shares.append(mask.all(dim=0).float().mean())
    # the same share of the spectrum as at 128 bins (at most 2 × 27 / 128 = 42%), not twice it
    assert max(shares) <= 2 * 14 / 64


def test_each_front_end_is_a_class_of_its_own():
    assert set(F.FRONT_ENDS) == {"logmel", "kaldi_fbank", "ge2e_mel", "waveform"}
    waveform = torch.randn(16000) * 0.1
    kaldi = F.build_front_end(features_config(kind="kaldi_fbank", n_mels=80, normalization="mean"))
    ge2e = F.build_front_end(features_config(kind="ge2e_mel", n_mels=40, normalization="none"))
    assert isinstance(kaldi, F.KaldiFbank) and kaldi(waveform).shape == (98, 80)
    assert isinstance(ge2e, F.GE2EMel) and ge2e(waveform).shape == (101, 40) and (ge2e(waveform) >= 0).all()
    with pytest.raises(Exception, match="n_mels: 40"):
        F.build_front_end(features_config(kind="ge2e_mel", n_mels=64))
    samples = F.build_front_end(features_config(kind="waveform", n_mels=1, normalization="none", hop_ms=0.0625))
    assert isinstance(samples, F.Waveform) and torch.equal(samples(waveform), waveform[:, None])
    with pytest.raises(Exception, match="one value per sample: features.n_mels: 1"):
        F.build_front_end(features_config(kind="waveform", n_mels=64))


def test_the_audio_package_imports_nothing_from_models():
    import pathlib
    import re

    for path in pathlib.Path("merlib/audio").glob("*.py"):
        assert not re.search(r"^\s*(from|import) merlib\.models", path.read_text(), re.M), path


@pytest.mark.parametrize("name", ["conservative", "aggressive"])
def test_masks_are_torchaudios_draws_from_the_same_seed(name):
    """SpecAugment.draw, from a generator of its own, gives the masks torchaudio's transforms
    (shared masks) give under torch.manual_seed(seed): runs made before batched masking keep theirs."""
    import torchaudio

    policy = PAPER.augment.policies[name]
    augment = SpecAugment(policy, n_mels=64)
    freq = torchaudio.transforms.FrequencyMasking(augment.freq_width, iid_masks=False)
    time = torchaudio.transforms.TimeMasking(policy.time_width, iid_masks=False, p=policy.max_time_fraction)
    state = torch.random.get_rng_state()
    for seed, frames in zip(range(40), [40, 150, 300, 777] * 10):
        features = torch.randn(frames, 64)
        torch.manual_seed(seed)
        reference = features.T.unsqueeze(0)  # (1, bins, frames)
        for _ in range(policy.freq_masks):
            reference = freq(reference)
        for _ in range(policy.time_masks):
            reference = time(reference)
        assert torch.equal(mask_features(features, augment, generator_seed=seed)[0], reference[0].T)
    torch.random.set_rng_state(state)


def test_a_batch_masked_at_once_equals_its_items_masked_one_by_one():
    """The training batch's masks, applied in one operation (forward_masked's apply_masks), equal
    each item masked alone; originals (no draw) are untouched; the global generator is not used."""
    from merlib.audio.augment import apply_masks, mask_intervals

    augmenters = [SpecAugment(PAPER.augment.policies[name], n_mels=32) for name in ("conservative", "aggressive")]
    features = torch.randn(6, 120, 32)
    draws = [augmenters[i % 2].draw(120, 32, seed=1000 + i) if i < 4 else ([], []) for i in range(6)]
    before = torch.random.get_rng_state()
    masked, mask = apply_masks(features, mask_intervals([d[0] for d in draws]), mask_intervals([d[1] for d in draws]))
    assert torch.equal(torch.random.get_rng_state(), before)
    for i in range(4):
        alone = mask_features(features[i], augmenters[i % 2], generator_seed=1000 + i)
        assert torch.equal(masked[i], alone[0]) and torch.equal(mask[i], alone[1])
    assert torch.equal(masked[4:], features[4:]) and not mask[4:].any()
