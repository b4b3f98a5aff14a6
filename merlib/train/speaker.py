"""Speaker pretraining: speaker classification with cross-entropy on a VoxCeleb-layout corpus,
the same log-mel front end, SpecAugment copies and random chunks as the emotion stages. The
product is the embedding network's state dict (`speaker_backbone.pt`) that transfer loads."""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Sequence

import numpy as np
import torch

from merlib.audio.dataset import ChunkBuilder, evaluate_full_length, forward_masked, plan_chunk_batches, training_items
from merlib.audio.feature_store import FeatureCache
from merlib.batches import epoch_loader
from merlib.config import Config
from merlib.data.speakers import SpeakerUtterance
from merlib.io import save_torch, write_json
from merlib.layout import PRETRAIN_CHECKPOINT, PRETRAIN_HISTORY
from merlib.models.backbones import build_backbone
from merlib.models.resnet import Classifier
from merlib.runtime import Runtime, runtime_for
from merlib.stages import Stage, check_stages
from merlib.train.common import (
    build_augmenters,
    chunk_shapes,
    frame_and_segment_parameters,
    optimizer_for,
    schedule_for,
)
from merlib.train.loop import Trainer
from merlib.train.pretrained import BACKBONE_FILE


def holdout_positions(records: Sequence[SpeakerUtterance], per_speaker: int) -> tuple[list[int], list[int]]:
    """(train, hold-out) positions in `records`: each speaker's last `per_speaker` utterances held
    out, in one pass over the records (VoxCeleb2 has a million of them), in the manifest's order."""
    by_speaker: dict[str, list[int]] = collections.defaultdict(list)
    for position, record in enumerate(records):
        by_speaker[record.speaker].append(position)
    held = {position for positions in by_speaker.values() for position in positions[-per_speaker:]}
    return [p for p in range(len(records)) if p not in held], sorted(held)


def scaled_for_ranks(pretrain, world_size: int):
    """The stage as it trains on `world_size` ranks: with `per_device_batch`, a global batch of
    batch_size × ranks and learning rates × ranks (the linear scaling rule of Goyal et al. 2017,
    with the stage's warm-up epochs); without, the stage as configured (its batch is global)."""
    stage = pretrain.stage
    if not pretrain.per_device_batch or world_size == 1:
        return stage
    return dataclasses.replace(stage, batch_size=stage.batch_size * world_size, lr=stage.lr * world_size,
                               backbone_lr=stage.backbone_lr * world_size)  # fmt: skip


def pretrain_speakers(
    config: Config,
    records: list[SpeakerUtterance],
    corpus_root: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    cache_dir: str | pathlib.Path,
    progress: bool = True,
    runtime: Runtime | None = None,
    stage: Stage | None = None,
    rerun_changed: bool = False,
) -> pathlib.Path:
    """Train, keep the best epoch by held-out speaker-ID accuracy, save the backbone; resumable.
    With `stage` (its fingerprint), done with the same fingerprint: skipped; with another:
    refused, or redone with `rerun_changed`."""
    runtime = runtime or runtime_for(config)
    out_dir = pathlib.Path(out_dir)
    final = out_dir / BACKBONE_FILE
    if stage is not None:
        if runtime.is_main:
            check_stages([stage], rerun_changed)
        runtime.barrier()
        if stage.state()[0] == "done" and final.is_file():
            return final
    elif final.is_file():
        return final
    settings = scaled_for_ranks(config.pretrain, runtime.world_size)
    speakers = sorted({r.speaker for r in records})
    index = {s: i for i, s in enumerate(speakers)}
    train, holdout = holdout_positions(records, config.pretrain.holdout_per_speaker)
    # every rank computes its share of what is missing; then each reads any utterance from the shards
    # (the cache's index of every shard is let go once the features are found: only `stored` is kept)
    stored = FeatureCache(cache_dir, corpus_root, config.features, device=runtime.device).compute_all(
        [(r.id, r.wav) for r in records], "speaker features", runtime
    )
    train_features, holdout_features = stored.subset(train), stored.subset(holdout)
    train_labels = [index[records[p].speaker] for p in train]
    holdout_labels = np.array([index[records[p].speaker] for p in holdout])

    torch.manual_seed(config.seed)
    model = Classifier(build_backbone(config), len(speakers)).to(runtime.device)
    backbone = model.backbone
    frame, segment = frame_and_segment_parameters(model)
    optimizer = optimizer_for(
        frame, segment, dataclasses.replace(settings, backbone_lr=settings.backbone_lr or settings.lr), runtime
    )
    items = training_items(len(train), config.pretrain.augment_copies)
    augmenters = build_augmenters(config, config.pretrain.augment_copies)
    lengths = train_features.lengths
    build = ChunkBuilder(train_features, train_labels, augmenters)

    def make_batches(epoch, rng):
        plan = plan_chunk_batches(lengths, items, settings.batch_size, settings.chunk_frames, rng, len(augmenters))
        return epoch_loader(plan, build, runtime)

    def evaluate(epoch):
        predicted = evaluate_full_length(model, holdout_features, runtime, spread=True, top_class=True).numpy()
        return {"holdout_speaker_accuracy": float((predicted == holdout_labels).mean())}

    trainer = Trainer(
        model,
        optimizer,
        schedule=schedule_for(settings),
        forward=forward_masked,
        evaluate_together=True,
        checkpoint=out_dir / PRETRAIN_CHECKPOINT,
        seed=config.seed,
        max_grad_norm=settings.max_grad_norm or None,
        select="holdout_speaker_accuracy",
        description="speaker pretraining",
        progress=progress,
        runtime=runtime,
        fingerprint=stage.fingerprint.as_dict() if stage else None,
        compile_shapes=chunk_shapes(settings.chunk_frames, runtime),
    )
    history = trainer.fit(settings.epochs, make_batches, evaluate)
    trainer.restore_best()
    if not runtime.is_main:
        runtime.barrier()
        return final
    save_torch(backbone.state_dict(), final)
    write_json(  # last: the history records the fingerprint that marks the stage done
        out_dir / PRETRAIN_HISTORY,
        {
            "speakers": len(speakers),
            "train_utterances": len(train),
            "holdout_utterances": len(holdout),
            "chance": 1 / len(speakers),
            "global_batch_size": settings.batch_size,
            "lr": settings.lr,
            "best_epoch": trainer.best_epoch,
            "history": history,
            "features": dataclasses.asdict(config.features),
            "model": dataclasses.asdict(config.speech.model),
            "runtime": runtime.describe(),
            "fingerprint": stage.fingerprint.as_dict() if stage else None,
        },
    )
    runtime.barrier()
    return final
