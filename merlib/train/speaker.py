"""Speaker pretraining: speaker classification with cross-entropy on a VoxCeleb-layout corpus,
the same log-mel front end, SpecAugment copies and random chunks as the emotion stages. The
product is the embedding network's state dict (`speaker_backbone.pt`) that transfer loads."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch

from merlib.audio.dataset import chunk_batches, evaluate_full_length, training_items
from merlib.audio.features import FeatureCache
from merlib.config import Config
from merlib.data.speakers import SpeakerUtterance
from merlib.io import save_torch, write_json
from merlib.models.resnet import Classifier
from merlib.train.common import (
    build_augmenters,
    build_backbone,
    frame_and_segment_parameters,
    optimizer_for,
    schedule_for,
)
from merlib.train.loop import Trainer
from merlib.train.pretrained import BACKBONE_FILE


def pretrain_speakers(
    config: Config,
    records: list[SpeakerUtterance],
    corpus_root: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    cache_dir: str | pathlib.Path,
    progress: bool = True,
) -> pathlib.Path:
    """Train, keep the best epoch by held-out speaker-ID accuracy, save the backbone; resumable."""
    out_dir = pathlib.Path(out_dir)
    final = out_dir / BACKBONE_FILE
    if final.is_file():
        return final
    stage = config.pretrain.stage
    speakers = sorted({r.speaker for r in records})
    index = {s: i for i, s in enumerate(speakers)}
    held = set()
    for speaker in speakers:
        held |= {r.id for r in [r for r in records if r.speaker == speaker][-config.pretrain.holdout_per_speaker :]}
    train = [r for r in records if r.id not in held]
    holdout = [r for r in records if r.id in held]
    cache = FeatureCache(cache_dir, corpus_root, config.features)
    features = dict(
        zip((r.id for r in records), cache.compute_all([(r.id, r.wav) for r in records], "speaker features"))
    )
    train_features = [features[r.id] for r in train]
    holdout_features = [features[r.id] for r in holdout]
    train_labels = [index[r.speaker] for r in train]
    holdout_labels = np.array([index[r.speaker] for r in holdout])

    torch.manual_seed(config.seed)
    model = Classifier(build_backbone(config), len(speakers))
    backbone = model.backbone
    frame, segment = frame_and_segment_parameters(model)
    optimizer = optimizer_for(frame, segment, dataclasses.replace(stage, backbone_lr=stage.backbone_lr or stage.lr))
    items = training_items(len(train), config.pretrain.augment_copies)
    augmenters = build_augmenters(config)

    def make_batches(epoch, rng):
        return chunk_batches(train_features, train_labels, items, stage.batch_size, stage.chunk_frames, rng, augmenters)

    def evaluate(epoch):
        predicted = evaluate_full_length(model, holdout_features).argmax(dim=1).numpy()
        return {"holdout_speaker_accuracy": float((predicted == holdout_labels).mean())}

    trainer = Trainer(
        model,
        optimizer,
        schedule=schedule_for(stage),
        checkpoint=out_dir / "pretrain.ckpt",
        seed=config.seed,
        max_grad_norm=stage.max_grad_norm or None,
        select="holdout_speaker_accuracy",
        description="speaker pretraining",
        progress=progress,
    )
    history = trainer.fit(stage.epochs, make_batches, evaluate)
    trainer.restore_best()
    write_json(
        out_dir / "pretrain_history.json",
        {
            "speakers": len(speakers),
            "train_utterances": len(train),
            "holdout_utterances": len(holdout),
            "chance": 1 / len(speakers),
            "best_epoch": trainer.best_epoch,
            "history": history,
            "features": dataclasses.asdict(config.features),
            "model": dataclasses.asdict(config.speech.model),
        },
    )
    return save_torch(backbone.state_dict(), final)
