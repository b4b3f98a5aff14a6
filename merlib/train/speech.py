"""Emotion transfer of the speaker network (paper 3.2.1, 4.2.1), one LOSO fold at a time.

New randomly initialised FC layers (embedding layer and classification head) go on the
pretrained convolutions, then
1. linear probing (`lp`): convolutions frozen, FC layers trained at lr 1e-1;
2. fine-tuning (`ft`): convolutions at 1e-3 together with the FC layers (two parameter groups),
   starting from the linear-probed model (whose hold-out metrics are recorded as `start`).
SGD, momentum 0.9, batch 32, lr constant for 8 epochs then halved every other epoch; random
T-frame chunks, T from {150, 200, 250, 300} per batch; full-length evaluation. The epoch with
the best hold-out UA is kept. Scores follow the contract (merlib.scores).

Linear probing does not run the frozen convolutions every epoch: their output (the pooled
statistics) is computed once per segment — the original and its augmented copies, at full
length — and cached, and the FC layers are trained on those vectors. Random chunking applies
to fine-tuning only; this is the one place we depart from the recipe, for speed (the frozen
layers see the same inputs either way; only the chunking of those inputs differs).
"""

from __future__ import annotations

import pathlib
import zlib

import numpy as np
import torch

from merlib import EMOTIONS
from merlib.audio.augment import mask_features
from merlib.audio.dataset import chunk_batches, evaluate_full_length, training_items
from merlib.audio.features import FeatureCache
from merlib.config import Config, SystemConfig
from merlib.data.folds import Fold
from merlib.io import save_torch, write_json
from merlib.metrics import split_metrics
from merlib.models.checkpoints import load_checkpoint
from merlib.models.resnet import Classifier
from merlib.scores import write_scores
from merlib.train.common import (
    build_augmenters,
    build_backbone,
    frame_and_segment_parameters,
    optimizer_for,
    schedule_for,
)
from merlib.train.loop import Trainer
from merlib.train.pretrained import load_pretrained

POOLED_VERSION = 3  # bump when a backbone's `pooled` changes (2: GE2E partials; 3: wespeaker's TSTP std)


def build_transfer_model(config: Config, run_dir: str | pathlib.Path) -> Classifier:
    """The configured backbone with its pretrained weights (merlib.train.pretrained), and new
    random FC layers (embedding + head) for the 4 emotions."""
    torch.manual_seed(config.seed)
    model = Classifier(build_backbone(config), len(EMOTIONS))
    load_pretrained(config, run_dir, model.backbone)
    return model


def _frozen_frame_layers(model: Classifier) -> None:
    model.train()
    for layer in model.backbone.frame_layers():
        layer.eval()  # frozen batch-norm statistics stay as pretrained


class SpeechFold:
    """Everything one fold needs: features of its three splits, the model, the output folder."""

    def __init__(
        self, config: Config, system: SystemConfig, fold: Fold, corpus_root, run_dir, cache_dir, progress: bool = True
    ):
        self.config, self.fold, self.progress = config, fold, progress
        self.name = system.name
        self.run_dir = pathlib.Path(run_dir)
        self.fold_dir = self.run_dir / f"fold{fold.fold}"
        cache = FeatureCache(cache_dir, corpus_root, config.features)
        every = list(fold.train) + list(fold.holdout) + list(fold.test)
        features = dict(
            zip(
                (u.id for u in every),
                cache.compute_all([(u.id, u.wav) for u in every], f"fold {fold.fold} {config.features.kind}"),
            )
        )
        self.features = {
            split: [features[u.id] for u in getattr(fold, split)] for split in ("train", "holdout", "test")
        }
        self.labels = {
            split: np.array([EMOTIONS.index(u.label) for u in getattr(fold, split)])
            for split in ("train", "holdout", "test")
        }

    def _metrics(self, scores: torch.Tensor, split: str) -> dict:
        return split_metrics(self.labels[split], scores.numpy(), split)

    def _write(
        self, stage: str, model: Classifier, score_fn, history: list, best_epoch, start: dict | None = None
    ) -> dict:
        holdout, test = score_fn("holdout"), score_fn("test")
        ids = [u.id for u in self.fold.holdout] + [u.id for u in self.fold.test]
        splits = ["holdout"] * len(self.fold.holdout) + ["test"] * len(self.fold.test)
        labels = [u.label for u in self.fold.holdout] + [u.label for u in self.fold.test]
        write_scores(
            self.fold_dir / f"{self.name}_{stage}_scores.csv", ids, splits, labels, torch.cat([holdout, test]).numpy()
        )
        summary = {
            "stage": stage,
            "best_epoch": best_epoch,
            **self._metrics(holdout, "holdout"),
            **self._metrics(test, "test"),
            "history": history,
            "start": start,
        }
        write_json(self.fold_dir / f"{self.name}_{stage}_history.json", summary)
        return summary

    # -- stage 1 ----------------------------------------------------------------------------
    @torch.no_grad()
    def _pooled(self, model: Classifier, split: str, copies: int) -> tuple[torch.Tensor, np.ndarray]:
        """Frozen-network statistics of every segment (and, for train, its augmented copies).

        They depend on the utterance, the frozen backbone and the masks only — not on the fold —
        so they are cached per run and backbone (`pooled_cache/`) and computed once for all folds.
        """
        model.eval()
        augmenters = build_augmenters(self.config) if copies else []
        vectors, labels = [], []
        for record, features, label in zip(getattr(self.fold, split), self.features[split], self.labels[split]):
            for copy in range(copies + 1):
                key = f"{record.id}/{copy}"
                if key not in self.pooled_cache:
                    version = features
                    if copy:
                        seed = zlib.crc32(f"{record.id}/{copy}/{self.config.seed}".encode())
                        version = mask_features(features, augmenters[(copy - 1) % len(augmenters)], seed)[0]
                    self.pooled_cache[key] = model.backbone.pooled(version.unsqueeze(0))[0]
                    self._pooled_dirty = True
                vectors.append(self.pooled_cache[key])
                labels.append(label)
        return torch.stack(vectors), np.array(labels)

    def _open_pooled_cache(self, model: Classifier) -> None:
        import dataclasses
        import hashlib
        import json

        # the backbone's class and POOLED_VERSION stand for the code that computes the vectors
        digest = hashlib.sha256(
            json.dumps(
                [
                    dataclasses.asdict(self.config.features),
                    dataclasses.asdict(self.config.augment),
                    self.config.seed,
                    type(model.backbone).__name__,
                    POOLED_VERSION,
                ]
            ).encode()
        )
        for name, tensor in model.backbone.state_dict().items():  # the frozen weights themselves
            if not name.startswith("embedding."):
                digest.update(tensor.numpy().tobytes())
        key = digest.hexdigest()[:16]
        self.pooled_path = self.run_dir / "pooled_cache" / f"{key}.pt"
        self.pooled_cache = load_checkpoint(self.pooled_path) if self.pooled_path.is_file() else {}
        self._pooled_dirty = False

    def _save_pooled_cache(self) -> None:
        if self._pooled_dirty:
            save_torch(self.pooled_cache, self.pooled_path)

    def linear_probe(self, model: Classifier) -> dict:
        stage = self.config.speech.linear_probe
        self._open_pooled_cache(model)
        train_x, train_y = self._pooled(model, "train", self.config.augment.copies)
        holdout_x, _ = self._pooled(model, "holdout", 0)
        test_x, _ = self._pooled(model, "test", 0)
        self._save_pooled_cache()
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)
        _, segment = frame_and_segment_parameters(model)
        for parameter in segment:
            parameter.requires_grad_(True)
        optimizer = optimizer_for([], segment, stage)
        train_targets = torch.as_tensor(train_y, dtype=torch.long)

        def make_batches(epoch, rng):
            order = torch.as_tensor(rng.permutation(len(train_targets)))
            for start in range(0, len(order), stage.batch_size):
                index = order[start : start + stage.batch_size]
                yield train_x[index], train_targets[index]

        def score(split):
            model.eval()
            with torch.no_grad():
                return torch.log_softmax(model.forward_pooled(holdout_x if split == "holdout" else test_x), dim=-1)

        trainer = Trainer(
            model,
            optimizer,
            schedule=schedule_for(stage),
            checkpoint=self.fold_dir / f"{self.name}_lp.ckpt",
            seed=self.config.seed,
            max_grad_norm=stage.max_grad_norm or None,
            forward=lambda m, x: m.forward_pooled(x),
            set_train_mode=_frozen_frame_layers,
            select="holdout_ua",
            description=f"fold {self.fold.fold} {self.name} linear probe",
            progress=self.progress,
        )
        history = trainer.fit(stage.epochs, make_batches, lambda epoch: self._metrics(score("holdout"), "holdout"))
        trainer.restore_best()
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return self._write("lp", model, score, history, trainer.best_epoch)

    # -- stage 2 ----------------------------------------------------------------------------
    def fine_tune(self, model: Classifier) -> dict:
        stage = self.config.speech.fine_tune
        optimizer = optimizer_for(*frame_and_segment_parameters(model), stage)
        items = training_items(len(self.features["train"]), self.config.augment.copies)
        augmenters = build_augmenters(self.config)
        train_labels = self.labels["train"].tolist()

        def make_batches(epoch, rng):
            return chunk_batches(
                self.features["train"], train_labels, items, stage.batch_size, stage.chunk_frames, rng, augmenters
            )

        def score(split):
            return evaluate_full_length(model, self.features[split])

        trainer = Trainer(
            model,
            optimizer,
            schedule=schedule_for(stage),
            checkpoint=self.fold_dir / f"{self.name}_ft.ckpt",
            seed=self.config.seed,
            max_grad_norm=stage.max_grad_norm or None,
            select="holdout_ua",
            description=f"fold {self.fold.fold} {self.name} fine-tune",
            progress=self.progress,
        )
        # The probed model's hold-out metrics are recorded (start); with keep_start_if_best it also
        # competes with the fine-tuned epochs (best_epoch -1: no epoch beat the probe, ft = lp).
        history = trainer.fit(
            stage.epochs,
            make_batches,
            lambda epoch: self._metrics(score("holdout"), "holdout"),
            evaluate_start=True,
            keep_start_if_best=stage.keep_start_if_best,
        )
        trainer.restore_best()
        return self._write("ft", model, score, history, trainer.best_epoch, start=trainer.start)


def run_speech_fold(
    config: Config, system: str, fold: Fold, corpus_root, run_dir, cache_dir, stages=None, progress: bool = True
) -> dict:
    """Linear probe then fine-tune system `system` of `config` (each stage skipped when its scores
    exist); returns the summaries of the stages run."""
    plan = config.system(system)
    config = config.system_config(system)
    stages = [stage for stage in plan.stages if stages is None or stage in stages]
    run_dir = pathlib.Path(run_dir)
    job = SpeechFold(config, plan, fold, corpus_root, run_dir, cache_dir, progress)
    model = build_transfer_model(config, run_dir)
    results = {}
    lp_state = job.fold_dir / f"{job.name}_lp_model.pt"
    if (job.fold_dir / f"{job.name}_lp_scores.csv").is_file() and lp_state.is_file():
        model.load_state_dict(load_checkpoint(lp_state))  # fine-tuning starts from the probed model
    elif "lp" in stages:
        results["lp"] = job.linear_probe(model)
        save_torch(model.state_dict(), lp_state)
    if "ft" in stages and not (job.fold_dir / f"{job.name}_ft_scores.csv").is_file():
        results["ft"] = job.fine_tune(model)
    return results
