"""Self-supervised encoders as speech backbones (merlib.models.ssl), on tiny random-weight WavLM,
HuBERT and Whisper checkpoints made here with save_pretrained: loading and its errors, padding and
windows, one LOSO fold through config alone (probe, fine-tune, layer weights), predict."""

import json
import pathlib

import numpy as np
import pytest
import torch
import yaml

from merlib.config import load_config

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
            conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4)  # fmt: skip


def save_checkpoint(folder: pathlib.Path, kind: str) -> pathlib.Path:
    """A random-weight encoder of `kind` (wavlm: layer-norm CNN; hubert: group-norm, as the base models)."""
    import transformers

    torch.manual_seed(0)
    if kind == "whisper":
        # 3 s windows instead of 30 (max_source_positions, chunk_length): the same code, a tenth of the cost
        config = transformers.WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                            num_mel_bins=80, max_source_positions=150)  # fmt: skip
        transformers.WhisperModel(config).save_pretrained(folder)
        transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=3).save_pretrained(folder)
        return folder
    if kind == "wavlm":
        config = transformers.WavLMConfig(**TINY, feat_extract_norm="layer", num_buckets=16, max_bucket_distance=40)
        model = transformers.WavLMModel(config)
    else:
        model = transformers.HubertModel(transformers.HubertConfig(**TINY, feat_extract_norm="group"))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=kind == "wavlm").save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("ssl")
    return {kind: save_checkpoint(base / f"tiny-{kind}", kind) for kind in ("wavlm", "hubert", "whisper")}


def ssl_system(name: str, path: pathlib.Path, source: str = "huggingface") -> dict:
    return {"name": name, "modality": "speech", "overrides": {
        "features": {"kind": "waveform", "n_mels": 1, "hop_ms": 0.0625, "normalization": "none"},
        "augment": {"copies": 0},
        "speech": {"model": {"backbone": "ssl", "embed_dim": 16}, "pretrained": {"source": source, "path": str(path)},
                   "probe_chunks": 0, "max_seconds": 2.0,
                   "linear_probe": {"epochs": 3, "batch_size": 8, "optimizer": "adam", "lr": 0.01},
                   "fine_tune": {"epochs": 1, "batch_size": 8, "chunk_frames": [16000], "optimizer": "adam",
                                 "lr": 0.001, "backbone_lr": 0.0001}}}}  # fmt: skip


def batch_and_alone(model, waves):
    """Pooled vectors of `waves` in one zero-padded batch (merlib's padded_batch) and each alone."""
    from merlib.audio.dataset import padded_batch

    padded, lengths = padded_batch([wave[:, None] for wave in waves])
    with torch.no_grad():
        return model.pooled(padded, lengths), torch.cat([model.pooled(w[None, :, None]) for w in waves])


def backbone(path, **options):
    from merlib.models.ssl import SSLBackbone

    return SSLBackbone(path, embed_dim=16, **options).eval()


def test_a_padded_batch_gives_each_utterance_its_vector_alone(checkpoints):
    """With an attention mask (a layer-norm CNN), padding changes no pooled vector; a group-norm
    encoder says it cannot take lengths, and is evaluated one utterance at a time."""
    model = backbone(checkpoints["wavlm"])
    assert model.takes_lengths and not backbone(checkpoints["hubert"]).takes_lengths
    torch.manual_seed(1)
    waves = [torch.randn(n) * 0.1 for n in (16000, 9000, 4000)]
    batch, alone = batch_and_alone(model, waves)
    assert batch.shape == (3, model.num_layers * model.hidden)
    assert torch.allclose(batch, alone, atol=1e-4), (batch - alone).abs().max()
    assert model.min_frames == 85  # the CNN's receptive field: kernels 10, 4, 4 at strides 5, 4, 4


def test_whispers_encoder_pools_the_valid_frames_of_its_30_second_window(checkpoints):
    """Whisper pads every input to its window of log-mel (30 s; 3 s in the tiny one): a batch gives
    each utterance its vector alone; one frame per 20 ms is pooled; longer input is cut into windows."""
    model = backbone(checkpoints["whisper"])
    assert model.whisper and model.takes_lengths and model.num_layers == 3 and model.max_samples == 3 * 16000
    torch.manual_seed(2)
    waves = [torch.randn(n) * 0.1 for n in (16000, 6400)]
    batch, alone = batch_and_alone(model, waves)
    with torch.no_grad():
        _, frames = model._layer_sums(torch.zeros(2, 16000), torch.tensor([16000, 6400]))
    assert torch.allclose(batch, alone, atol=1e-4) and frames.tolist() == [50, 20]
    with torch.no_grad():  # 7 s: windows of 3, 3 and 1 s
        assert model.pooled(torch.randn(1, 7 * 16000, 1) * 0.1).shape == (1, 3 * 32)
    frozen = {name for name, p in model.encoder.named_parameters() if not p.requires_grad}
    assert {"conv1.weight", "conv2.weight"} <= frozen and not any(n.startswith("layers.") for n in frozen)


def test_a_long_utterance_is_encoded_in_windows_pooled_together(checkpoints):
    whole, windowed = backbone(checkpoints["wavlm"]), backbone(checkpoints["wavlm"], max_seconds=1.0)
    wave = torch.randn(1, 40000, 1) * 0.1  # 2.5 s: windows of 1, 1 and 0.5 s
    with torch.no_grad():
        pooled = windowed.pooled(wave)
        parts = [whole._layer_sums(wave[:, a:b, 0], torch.tensor([b - a])) for a, b in ((0, 16000), (16000, 32000),
                                                                                        (32000, 40000))]  # fmt: skip
    total = sum(sums for sums, _ in parts) / sum(frames for _, frames in parts)[:, None, None]
    assert torch.allclose(pooled, total.flatten(1), atol=1e-5)
    assert not torch.allclose(pooled, whole.pooled(wave), atol=1e-3)  # a window sees less context


def test_missing_or_foreign_checkpoint_folders_are_one_clear_error(checkpoints, tmp_path, capsys):
    from merlib.cli import main
    from merlib.errors import MerlibError

    config = tmp_path / "ssl.yaml"
    missing = tmp_path / "no-such-checkpoint"
    plan = {"name": "ssl", "systems": [ssl_system("ssl", missing)], "fusions": [], "claims": []}
    config.write_text(yaml.safe_dump({"base": str(pathlib.Path("configs/demo.yaml").resolve()), **plan}))
    assert main(["speech", "--config", str(config), "--fold", "1", "--runs", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert f"speech.pretrained.path {missing}: no such folder" in error and "Traceback" not in error
    foreign = tmp_path / "bert"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(MerlibError, match="a 'bert' checkpoint; the ssl backbone takes wavlm, hubert"):
        backbone(foreign)
    empty = tmp_path / "config-only"
    empty.mkdir()
    (empty / "config.json").write_text((checkpoints["wavlm"] / "config.json").read_text())
    with pytest.raises(MerlibError, match="no weights"):
        backbone(empty)
    assert backbone(empty, pretrained=False).num_layers == 3  # source: none builds it from config.json
    other_rate = tmp_path / "8k"
    import shutil

    shutil.copytree(checkpoints["wavlm"], other_rate)
    preprocessor = json.loads((other_rate / "preprocessor_config.json").read_text()) | {"sampling_rate": 8000}
    (other_rate / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    with pytest.raises(MerlibError, match="takes 8000 Hz audio.*features.sample_rate: 8000"):
        backbone(other_rate)


def test_a_checkpoint_saved_in_half_precision_is_trained_in_fp32(tmp_path):
    """whisper-large-v3 is saved in fp16: merlib keeps fp32 weights (autocast picks the compute)."""
    import transformers

    config = transformers.WavLMConfig(**TINY, feat_extract_norm="layer", num_buckets=16, max_bucket_distance=40)
    transformers.WavLMModel(config).half().save_pretrained(tmp_path, safe_serialization=True)
    model = backbone(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with torch.no_grad():
        assert torch.isfinite(model.pooled(torch.randn(1, 8000, 1) * 0.1)).all()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:hold-out")
def test_one_loso_fold_of_wavlm_hubert_and_whisper_through_config_alone(checkpoints, tiny_demo_corpus, tmp_path):
    """Probe and fine-tune scores of both encoders, their layer weights, the CNN left as
    pretrained by fine-tuning; then merlib predict on a recording with the SSL systems."""
    from merlib import pipeline
    from merlib.layout import RunLayout
    from merlib.predict import Predictor
    from merlib.scores import read_scores

    corpus, utterances = tiny_demo_corpus
    systems = [ssl_system(kind, checkpoints[kind]) for kind in ("wavlm", "hubert", "whisper")]
    overrides = {"name": "ssl", "data": {"root": str(corpus)}, "systems": systems, "fusions": [], "claims": []}
    from merlib.data import iemocap

    manifest = iemocap.write_prepared(iemocap.prepare_iemocap(corpus, corpus="demo"), tmp_path / "manifest", corpus)
    overrides["data"]["manifest"] = str(manifest)
    config = load_config("configs/demo.yaml", overrides)
    run_dir = pipeline.writable_run_directory(config, tmp_path / "runs")
    layout = RunLayout(run_dir)
    for name in ("wavlm", "hubert", "whisper"):
        results = pipeline.speech_fold(config, 2, run_dir, name, progress=False)
        assert set(results) == {"lp", "ft"}
        for stage in ("lp", "ft"):
            scores = read_scores(layout.scores(2, f"{name}_{stage}"))
            assert set(scores["split"]) == {"holdout", "test"} and np.isfinite(scores[["ang", "sad"]]).all().all()
            weights = json.loads(layout.history(2, f"{name}_{stage}").read_text())["layer_weights"]
            assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-5 and np.ptp(weights) > 0  # trained, not equal
        tuned = torch.load(layout.weights(2, f"{name}_ft"), weights_only=True)
        untrained = backbone(checkpoints[name])
        start, frozen = untrained.encoder.state_dict(), tuple(f"{name}." for name in untrained.frozen)
        cnn = [key for key in start if key.startswith(frozen)]
        others = [key for key in start if not key.startswith((*frozen, "masked_spec_embed", "embed_positions"))]
        assert cnn and all(torch.equal(tuned[f"backbone.encoder.{key}"], start[key]) for key in cnn)
        assert not all(torch.equal(tuned[f"backbone.encoder.{key}"], start[key]) for key in others)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"base": str(pathlib.Path("configs/demo.yaml").resolve()),
                                                         **overrides}))  # fmt: skip
    wav = corpus / next(u for u in utterances if u.session == 2).wav  # session 2: fold 2 never trained on it
    prediction = Predictor(run_dir).predict("", wav)
    assert {f"{kind}_{stage}" for kind in ("wavlm", "hubert", "whisper") for stage in ("lp", "ft")} <= set(
        prediction.probabilities
    )
    assert all(abs(sum(p.values()) - 1) < 1e-4 for p in prediction.probabilities.values())


def test_the_ssl_bench_measures_a_pass_and_a_step_and_estimates_a_fold_from_them():
    from merlib.bench import bench_ssl, iemocap_fold_sizes, ssl_fold_estimate
    from merlib.config import paper_config

    result = bench_ssl(paper_config({"runtime": {"device": "cpu", "precision": "fp32"}}), utterances=1, seconds=1.0,
                       batch=2, rounds=1, shape=TINY)  # fmt: skip
    assert result["frozen_pass_seconds_per_audio_second"] > 0 and result["train_step_seconds_2x3s"] > 0
    assert result["ssl_yaml_fold_hours_estimate"] > 0
    ssl = load_config("configs/ssl.yaml")
    sizes, stage = iemocap_fold_sizes(0.1), ssl.system_config("wavlm").speech.fine_tune
    # 1 s per audio second: every utterance once (probe), the hold-out 6 times and the test once
    audio = {split: n * 4.5 for split, n in sizes.items()}
    expected = sum(audio.values()) + (stage.epochs + 1) * audio["holdout"] + audio["test"]
    assert ssl_fold_estimate(1.0, 0.0, ssl, "wavlm") == pytest.approx(expected / 3600)
