"""Self-supervised speech encoders (WavLM, HuBERT, wav2vec 2.0, data2vec-audio, and Whisper's
encoder) as backbones of the transfer protocol, beside the paper's speaker ResNet34:
`speech.model.backbone: ssl`, loaded with transformers' `from_pretrained` from a local folder
(`speech.pretrained: {source: huggingface, path: DIR}`; nothing is downloaded), or built from that
folder's config.json with random weights (`source: none`: the untrained control, and the bench).

The probe is SUPERB's and EmoBox's: every hidden layer (the CNN's projection and each
transformer layer) mean-pooled over the valid frames, a learned softmax-weighted sum of those
layer vectors, then the new FC layers. Because the weighted sum and the mean commute, `pooled`
returns the stacked per-layer means (layers × hidden) and `embedding` (the segment layers the
probe trains) weights them: linear probing trains the layer weights on cached vectors, as it
trains the ResNet's FC layers on cached statistics. Fine-tuning trains the transformer (at
`backbone_lr`) with the CNN feature encoder frozen, as is usual.

Input: the waveform (`features.kind: waveform`: one "frame" per sample), normalised per
utterance over its valid samples when the checkpoint's feature extractor says so
(`do_normalize`). A padded batch gives each utterance the vector it gets alone when the encoder
takes an attention mask (its CNN normalises per frame: `feat_extract_norm: layer`, the large
models and data2vec); group-norm encoders (HuBERT / wav2vec 2.0 / WavLM base) see each
utterance alone. Whisper's encoder takes its own log-mel (the folder's feature extractor) of a
30 s window, padded: every utterance costs 30 s, a batch is exact, and its valid frames (one per
20 ms) are pooled. Utterances longer than `speech.max_seconds` (Whisper: 30 s at most) are cut
into windows whose frame sums are pooled together. transformers' own time masking
(`apply_spec_augment`) is switched off: its numpy draws are not seeded by merlib's runs; so is
LayerDrop, since a dropped layer returns no hidden state for the layer weights to weigh.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import torch
from torch import nn

from merlib.errors import DataNotFoundError
from merlib.models.checkpoints import CheckpointMismatchError

SUPPORTED = ("wavlm", "hubert", "wav2vec2", "data2vec-audio", "whisper")
WHISPER_HOP = 2  # log-mel hops per encoder frame: Whisper's second convolution has stride 2
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def checkpoint_config(path: pathlib.Path) -> dict:
    """The folder's config.json, after checking the folder holds a supported encoder (and, for
    `weights`, its weights): else one error naming the folder and what was expected."""
    expected = (f"a transformers checkpoint folder of one of {', '.join(SUPPORTED)} (config.json, "
                "model.safetensors or pytorch_model.bin, preprocessor_config.json), e.g. microsoft/wavlm-base-plus "
                "downloaded with `huggingface-cli download microsoft/wavlm-base-plus --local-dir DIR`")  # fmt: skip
    if not path.is_dir():
        raise DataNotFoundError(f"speech.pretrained.path {path}: no such folder; it must be {expected}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise DataNotFoundError(f"{path}: no config.json; the folder must be {expected}")
    config = json.loads(config_file.read_text())
    if config.get("model_type") not in SUPPORTED:
        raise CheckpointMismatchError(
            f"{path}: a {config.get('model_type', 'unknown')!r} checkpoint; "
            f"the ssl backbone takes {', '.join(SUPPORTED)}"
        )
    return config


def _load_encoder(path: pathlib.Path, pretrained: bool) -> nn.Module:
    import transformers

    from merlib.progress import progress_enabled

    checkpoint_config(path)
    if pretrained and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise DataNotFoundError(f"{path}: no weights ({' or '.join(WEIGHT_FILES[:2])}); download the checkpoint "
                                "whole, or set speech.pretrained.source: none for random weights")  # fmt: skip
    if not progress_enabled():  # its "Loading weights" bar would freeze into logs and notebooks
        transformers.utils.logging.disable_progress_bar()
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    config.apply_spec_augment = False  # unseeded numpy masking inside the model: off (module docstring)
    config.layerdrop = config.encoder_layerdrop = 0.0  # a dropped layer leaves no hidden state to weigh
    if pretrained:
        model = transformers.AutoModel.from_pretrained(path, config=config, local_files_only=True)
    else:
        model = transformers.AutoModel.from_config(config)
    # fp32 master weights whatever the folder was saved in (whisper-large-v3 is fp16): the runtime's
    # autocast decides the precision of the computation, as for every other backbone
    model = model.float()
    return model.get_encoder() if config.model_type == "whisper" else model  # Whisper: the encoder only


def _preprocessor(path: pathlib.Path) -> dict:
    preprocessor = path / "preprocessor_config.json"
    return json.loads(preprocessor.read_text()) if preprocessor.is_file() else {}


def _whisper_front_end(path: pathlib.Path):
    """Whisper's own log-mel (its feature extractor, from the folder's preprocessor_config.json):
    (batch, samples) waveforms with their lengths → (batch, mels, 3000) on their device; and the
    window it pads every input to, in seconds (chunk_length: 30)."""
    import transformers

    if not (path / "preprocessor_config.json").is_file():
        raise DataNotFoundError(f"{path}: no preprocessor_config.json; Whisper's log-mel front end is defined there: "
                                "download the checkpoint folder whole")  # fmt: skip
    extractor = transformers.WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)

    def log_mel(waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rows = [row[: int(n)].detach().float().cpu().numpy() for row, n in zip(waveform, lengths)]
        device = "cuda" if waveform.device.type == "cuda" else "cpu"
        with torch.autocast(waveform.device.type, enabled=False):  # its STFT in fp32, whatever the step's precision
            features = extractor(rows, sampling_rate=extractor.sampling_rate, return_tensors="pt", device=device)
        return features.input_features.to(waveform.device)

    log_mel.hop_length = extractor.hop_length
    return log_mel, extractor.chunk_length


class LayerWeightedEmbedding(nn.Module):
    """(batch, layers × hidden) stacked layer means → softmax-weighted sum over layers → Linear."""

    def __init__(self, layers: int, hidden: int, embed_dim: int):
        super().__init__()
        self.layers, self.hidden = layers, hidden
        self.layer_logits = nn.Parameter(torch.zeros(layers))  # equal weights to start with
        self.linear = nn.Linear(hidden, embed_dim)

    @property
    def in_features(self) -> int:
        return self.layers * self.hidden

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        stacked = pooled.view(pooled.shape[0], self.layers, self.hidden)
        return self.linear(torch.einsum("l,blh->bh", self.layer_weights().to(stacked.dtype), stacked))


class SSLBackbone(nn.Module):
    """A transformers speech encoder with the backbone interface (merlib.models.backbone)."""

    feat_dim = 1  # one value per "frame": the waveform

    def __init__(self, path: str | pathlib.Path, embed_dim: int, pretrained: bool = True, max_seconds: float = 0.0,
                 sample_rate: int = 16000):  # fmt: skip
        super().__init__()
        self.path = pathlib.Path(path)
        self.encoder = _load_encoder(self.path, pretrained)
        wanted = _preprocessor(self.path).get("sampling_rate")  # the rate its feature extractor expects
        if wanted not in (None, sample_rate):
            raise CheckpointMismatchError(f"{self.path} takes {wanted} Hz audio (its preprocessor_config.json); "
                                          f"set features.sample_rate: {wanted}")  # fmt: skip
        config = self.encoder.config
        self.whisper = config.model_type == "whisper"
        # the CNN that turns audio (or Whisper's log-mel) into frames: fine-tuning leaves it as pretrained
        self.frozen = ("conv1", "conv2") if self.whisper else ("feature_extractor",)
        for name in self.frozen:
            module = getattr(self.encoder, name)
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            module._requires_grad = False  # the wav2vec 2.0 family then builds no graph through it
        layers = config.encoder_layers if self.whisper else config.num_hidden_layers
        self.num_layers, self.hidden = layers + 1, config.d_model if self.whisper else config.hidden_size
        self.embed_dim = embed_dim
        self.embedding = LayerWeightedEmbedding(self.num_layers, self.hidden, embed_dim)
        if self.whisper:  # every input is padded to 30 s of log-mel: a batch is exact, and 30 s the longest
            self.log_mel, window = _whisper_front_end(self.path)  # window: 30 s for every released Whisper
            self.samples_per_frame = WHISPER_HOP * self.log_mel.hop_length
            self.normalize_input, self.takes_lengths = False, True
            max_seconds = min(max_seconds or window, window)
            self.least_cost = window * sample_rate  # every input is encoded as a whole window
        else:
            self.normalize_input = bool(_preprocessor(self.path).get("do_normalize", True))
            # data2vec-audio's CNN always normalises per frame (its config has no feat_extract_norm)
            norm = getattr(config, "feat_extract_norm", "layer" if config.model_type == "data2vec-audio" else "group")
            self.takes_lengths = norm == "layer"
        self.max_samples = int(max_seconds * sample_rate) if max_seconds > 0 else 0
        self.frame_scale = sample_rate // 100  # input rows per 10 ms frame: evaluation batches by duration
        self.min_frames = self._shortest_input()

    def _shortest_input(self) -> int:
        """The fewest samples that give one frame (the CNN's receptive field; Whisper: one log-mel hop)."""
        if self.whisper:
            return self.log_mel.hop_length
        samples = 1
        while int(self.encoder._get_feat_extract_output_lengths(torch.tensor(samples))) < 1:
            samples += 1
        return samples

    def frame_layers(self) -> list[nn.Module]:
        """What probing freezes and fine-tuning trains at backbone_lr: all but the frozen CNN."""
        return [module for name, module in self.encoder.named_children() if name not in self.frozen]

    def segment_layers(self) -> list[nn.Module]:
        return [self.embedding]

    def layer_weights(self) -> list[float]:
        return self.embedding.layer_weights().detach().float().cpu().tolist()

    def _layer_sums(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, layers, hidden) sums of each layer's valid frames, and the frame counts (batch,)."""
        valid = torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]
        if self.normalize_input:  # zero mean, unit variance over the valid samples
            count = lengths[:, None].to(waveform.dtype)
            mean = (waveform * valid).sum(1, keepdim=True) / count
            variance = (((waveform - mean) * valid) ** 2).sum(1, keepdim=True) / count
            waveform = (waveform - mean) / torch.sqrt(variance + 1e-7) * valid
        if self.whisper:
            states = self.encoder(self.log_mel(waveform, lengths), output_hidden_states=True).hidden_states
            hop = self.samples_per_frame
            frames = torch.div(lengths + hop - 1, hop, rounding_mode="floor").clamp(1, states[0].shape[1])
        else:
            mask = valid.long() if self.takes_lengths and waveform.shape[0] > 1 else None
            with warnings.catch_warnings():  # torch on WavLM's float position bias beside a boolean padding mask
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
                states = self.encoder(waveform, attention_mask=mask, output_hidden_states=True).hidden_states
            frames = self.encoder._get_feat_extract_output_lengths(lengths).long()
        kept = (torch.arange(states[0].shape[1], device=waveform.device)[None, :] < frames[:, None]).float()
        sums = torch.stack([(state.float() * kept[..., None]).sum(1) for state in states], dim=1)  # fp32 sums
        return sums, frames

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, samples, 1) waveforms (zero-padded, with `lengths`) → (batch, layers × hidden):
        each layer's mean over the valid frames."""
        if x.dim() != 3 or x.shape[-1] != 1:
            raise ValueError(f"the ssl backbone takes (batch, samples, 1) waveforms (features.kind: waveform), "
                             f"got {tuple(x.shape)}")  # fmt: skip
        waveform = x[..., 0]
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], device=x.device)
        if self.max_samples and x.shape[1] > self.max_samples:
            return torch.cat([self._pooled_in_windows(row[: int(n)], int(n)) for row, n in zip(waveform, lengths)])
        sums, frames = self._layer_sums(waveform, lengths)
        return (sums / frames[:, None, None].clamp_min(1)).flatten(1)

    def _pooled_in_windows(self, waveform: torch.Tensor, length: int) -> torch.Tensor:
        """One long utterance in windows of at most max_samples (the last one longer than the
        shortest input), their frame sums pooled together: memory bounded by the window."""
        starts = list(range(0, length, self.max_samples))
        if len(starts) > 1 and length - starts[-1] < self.min_frames:
            starts.pop()  # a tail too short for one frame joins the window before it
        total, count = 0, 0
        for index, start in enumerate(starts):
            stop = starts[index + 1] if index + 1 < len(starts) else length
            window = waveform[start:stop][None]
            sums, frames = self._layer_sums(window, torch.tensor([window.shape[1]], device=window.device))
            total, count = total + sums, count + frames
        return (total / count[:, None, None].clamp_min(1)).flatten(1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.embedding(self.pooled(x, lengths))
