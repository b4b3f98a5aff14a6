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
statistics) is computed once per segment and copy (the original and its augmented copies) and
cached, and the FC layers are trained on those vectors. The recipe's random chunks are kept
as `speech.probe_chunks` random chunks per segment and copy, pooled once and drawn from each
epoch (0: the whole segment); fine-tuning draws fresh chunks every batch as the recipe says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import pathlib
import time
import zlib

import numpy as np
import torch

from merlib.audio.augment import mask_features
from merlib.audio.dataset import (
    ChunkBuilder,
    evaluate_full_length,
    forward_each,
    forward_masked,
    plan_chunk_batches,
    take_chunk,
    training_items,
)
from merlib.audio.feature_store import FeatureCache
from merlib.batches import TensorBuilder, epoch_loader, plan_index_batches
from merlib.config import Config, SystemConfig
from merlib.data.folds import Fold
from merlib.errors import MerlibError
from merlib.fingerprint import Fingerprint
from merlib.io import save_torch, write_json
from merlib.layout import RunLayout, score_set
from merlib.metrics import split_metrics
from merlib.models.backbones import build_backbone
from merlib.models.checkpoints import load_checkpoint
from merlib.models.resnet import Classifier
from merlib.runtime import CPU_FP32, Runtime, runtime_for
from merlib.scores import write_scores
from merlib.stages import Stage, check_stages, speech_stages
from merlib.train.common import (
    build_augmenters,
    chunk_shapes,
    frame_and_segment_parameters,
    optimizer_for,
    schedule_for,
)
from merlib.train.loop import Trainer, class_weights_for
from merlib.train.pretrained import load_pretrained
from merlib.train.vector_store import VectorStore

SPLITS = ("train", "holdout", "test")

POOLED_VERSION = 5  # bump when the pooled vectors change (2: GE2E partials; 3: TSTP std; 4: chunk keys; 5: batched)
POOLED_FLUSH = 512  # pieces gathered before they pass through the frozen network in batches


def build_transfer_model(config: Config, run_dir: str | pathlib.Path) -> Classifier:
    """The configured backbone with its pretrained weights (merlib.train.pretrained), and new
    random FC layers (embedding + head) for the run's classes (data.labels)."""
    torch.manual_seed(config.seed)
    model = Classifier(build_backbone(config), len(config.labels))
    load_pretrained(config, run_dir, model.backbone)
    return model


def _frozen_frame_layers(model: Classifier) -> None:
    model.train()
    for layer in model.backbone.frame_layers():
        layer.eval()  # frozen batch-norm statistics stay as pretrained


class _ProbedLayers(torch.nn.Module):
    """The layers linear probing trains, as one module whose forward takes cached pooled vectors
    (so DistributedDataParallel wraps exactly what is trained)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier.forward_pooled(pooled)


def pooled_cache_key(config: Config, backbone, precision: str) -> str:
    """The name of the pooled-vector cache that fits these inputs: the features, augmentation and
    seed (which segments, copies and chunks), the backbone's class and POOLED_VERSION (the code
    that computes the vectors), the precision (bf16 vectors differ from fp32 ones in the last
    bits) and the frozen weights themselves (not the segment layers the probe trains)."""
    digest = hashlib.sha256(
        json.dumps(
            [
                dataclasses.asdict(config.features),
                dataclasses.asdict(config.augment),
                config.seed,
                type(backbone).__name__,
                POOLED_VERSION,
                precision,
                *([backbone.max_samples] if hasattr(backbone, "max_samples") else []),  # ssl windows
            ]
        ).encode()  # fmt: skip
    )
    for name, tensor in backbone.state_dict().items():
        if not name.startswith("embedding."):
            digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class SpeechFold:
    """Everything one fold needs: features of its three splits, the model, the output folder."""

    def __init__(
        self,
        config: Config,
        system: SystemConfig,
        fold: Fold,
        corpus_root,
        run_dir,
        cache_dir,
        progress: bool = True,
        runtime: Runtime = CPU_FP32,
    ):
        self.config, self.fold, self.progress, self.runtime = config, fold, progress, runtime
        self.name = system.name
        self.run_dir = pathlib.Path(run_dir)
        self.layout = RunLayout(run_dir)
        self.timings: dict[str, float] = {}  # wall seconds per phase (`merlib bench fold` reports them)
        every = list(fold.train) + list(fold.holdout) + list(fold.test)
        # every rank computes its share of what is missing; the features are read from the shards when used
        with self.timed("features"):
            cache = FeatureCache(cache_dir, corpus_root, config.features, device=runtime.device)
            stored = cache.compute_all([(u.id, u.wav) for u in every], f"fold {fold.fold} {config.features.kind}",
                                       runtime)  # fmt: skip
        first = {"train": 0, "holdout": len(fold.train), "test": len(fold.train) + len(fold.holdout)}
        self.features = {split: stored.subset(range(first[split], first[split] + len(getattr(fold, split))))
                         for split in SPLITS}  # fmt: skip
        self.classes = list(config.labels)
        self.labels = {split: np.array([self.classes.index(u.label) for u in getattr(fold, split)]) for split in SPLITS}
        self.class_weights = class_weights_for(config.speech.loss, self.labels["train"], len(self.classes))

    @contextlib.contextmanager
    def timed(self, phase: str):
        """Adds the block's wall seconds to timings[phase]. Each phase ends on a host copy of its
        results (features, vectors, losses, scores), so the device's work is inside it."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    def _metrics(self, scores: torch.Tensor, split: str) -> dict:
        return split_metrics(self.labels[split], scores.numpy(), split)

    def _write(self, stage: str, model: Classifier, score_fn, trainer: Trainer) -> dict | None:
        """Scores, model (state dict, for `merlib predict` and for fine-tuning to start from) and,
        last, the history that marks the stage done. Every rank scores (fine-tuning's scoring is
        spread over the ranks); rank 0 writes, the other ranks return None."""
        with self.timed(f"{stage}_scoring"):
            holdout, test = score_fn("holdout"), score_fn("test")
        if not self.runtime.is_main:
            return None
        ids = [u.id for u in self.fold.holdout] + [u.id for u in self.fold.test]
        splits = ["holdout"] * len(self.fold.holdout) + ["test"] * len(self.fold.test)
        labels = [u.label for u in self.fold.holdout] + [u.label for u in self.fold.test]
        scores = torch.cat([holdout, test]).numpy()
        name = score_set(self.name, stage)
        write_scores(self.layout.scores(self.fold.fold, name), ids, splits, labels, scores, self.classes)
        summary = {
            "stage": stage,
            "best_epoch": trainer.best_epoch,
            **self._metrics(holdout, "holdout"),
            **self._metrics(test, "test"),
            "history": trainer.history,
            "start": trainer.start,
            "runtime": self.runtime.describe(),
            "fingerprint": trainer.fingerprint,
        }
        if hasattr(model.backbone, "layer_weights"):  # which encoder layers the probe listens to
            summary["layer_weights"] = model.backbone.layer_weights()
        save_torch(model.state_dict(), self.layout.weights(self.fold.fold, name))
        write_json(self.layout.history(self.fold.fold, name), summary)
        return summary

    # -- stage 1 ----------------------------------------------------------------------------
    @torch.no_grad()
    def _pooled(self, model: Classifier, split: str, copies: int, chunks: int = 0) -> tuple[torch.Tensor, np.ndarray]:
        """Frozen-network vectors of every segment (and, for train, its augmented copies): the
        whole segment, or (`chunks` > 0) that many random chunks of linear_probe.chunk_frames
        lengths, drawn from a seed of the segment, copy and chunk number. Shape (segments ×
        (copies + 1), chunks or 1, dim).

        They depend on the utterance's features, the frozen backbone and the masks only — not on
        the fold — so they are cached per run and backbone (`pooled_cache/`) and computed once for
        all folds. An entry is keyed by its features' content too: features computed again from a
        changed wav are not served a stale vector.
        """
        model.eval()
        augmenters = build_augmenters(self.config) if copies else []
        lengths = self.config.speech.linear_probe.chunk_frames
        rows, labels, pending = [], [], {}  # pending: key -> the piece still to pass through
        for record, features, label in zip(getattr(self.fold, split), self.features[split], self.labels[split]):
            content = hashlib.sha1(features.numpy().tobytes()).hexdigest()[:12]
            for copy in range(copies + 1):
                version = None
                row = []
                for chunk in range(max(chunks, 1)):
                    key = f"{record.id}/{copy}/{content}"
                    if chunks:
                        seed = zlib.crc32(f"{record.id}/{copy}/{chunk}/{self.config.seed}".encode())
                        draw = np.random.default_rng(seed)
                        frames = int(draw.choice(lengths))
                        room = features.shape[0] - frames
                        offset = int(draw.integers(0, room + 1)) if room > 0 else 0
                        key += f"/{frames}@{offset}"
                    if key not in self.pooled_cache and key not in pending:
                        if version is None:
                            version = features
                            if copy:
                                seed = zlib.crc32(f"{record.id}/{copy}/{self.config.seed}".encode())
                                version = mask_features(features, augmenters[(copy - 1) % len(augmenters)], seed)[0]
                        pending[key] = take_chunk(version, frames, offset) if chunks else version
                    row.append(key)
                rows.append(row)
                labels.append(label)
                if len(pending) >= POOLED_FLUSH:
                    self._pool_pending(model, pending)
        self._pool_pending(model, pending)
        vectors = [torch.stack([self.pooled_cache[key] for key in row]) for row in rows]
        return torch.stack(vectors), np.array(labels)

    def _pool_pending(self, model: Classifier, pending: dict[str, torch.Tensor]) -> None:
        """The frozen network's vectors of the pending pieces, in padded batches when the backbone
        takes lengths (each as if alone), into the cache; `pending` is emptied."""
        if pending:
            takes_lengths = getattr(model.backbone, "takes_lengths", False)
            backbone = model.backbone
            pooled = forward_each(backbone.pooled, list(pending.values()), self.runtime, takes_lengths,
                                  frame_scale=getattr(backbone, "frame_scale", 1),
                                  least_cost=getattr(backbone, "least_cost", 0))  # fmt: skip
            self.pooled_cache.update(zip(pending, pooled))
            pending.clear()

    def _open_pooled_cache(self, model: Classifier) -> None:
        key = pooled_cache_key(self.config, model.backbone, self.runtime.precision)
        self.pooled_cache = VectorStore(self.run_dir / "pooled_cache" / f"{key}.pt")

    def _pooled_splits(self, model: Classifier) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
        """Train: probe_chunks chunks per segment and copy (or the whole segment); hold-out and
        test: whole segments, as every evaluation."""
        with self.runtime.main_first():  # rank 0 computes and saves; the others read the saved vectors
            self._open_pooled_cache(model)
            copies, chunks = self.config.augment.copies, self.config.speech.probe_chunks
            pooled = {"train": self._pooled(model, "train", copies, chunks),
                      "holdout": self._pooled(model, "holdout", 0), "test": self._pooled(model, "test", 0)}  # fmt: skip
            if self.pooled_cache.changed and self.runtime.is_main:
                self.pooled_cache.save()
        return pooled

    def linear_probe(self, model: Classifier, fingerprint: Fingerprint) -> dict | None:
        stage = self.config.speech.linear_probe
        with self.timed("probe_vectors"):
            pooled = self._pooled_splits(model)
        train_x, train_y = pooled["train"]  # (items, chunks, dim)
        items, chunks = train_x.shape[:2]
        trainable = {parameter: parameter.requires_grad for parameter in model.parameters()}
        for parameter in model.backbone.parameters():
            parameter.requires_grad_(False)
        _, segment = frame_and_segment_parameters(model)
        for parameter in segment:
            parameter.requires_grad_(True)
        optimizer = optimizer_for([], segment, stage, self.runtime)
        targets = torch.as_tensor(train_y, dtype=torch.long).repeat_interleave(chunks)
        build = TensorBuilder(train_x.flatten(0, 1), targets)

        def make_batches(epoch, rng):  # in-memory vectors, no worker processes; this epoch's chunk of each item
            drawn = rng.integers(chunks, size=items)
            batches = plan_index_batches(items, stage.batch_size, rng)
            return epoch_loader(
                [[i * chunks + int(drawn[i]) for i in batch] for batch in batches], build, self.runtime, 0
            )

        @torch.no_grad()
        def score(split):
            model.eval()
            with self.runtime.autocast():
                logits = model.forward_pooled(self.runtime.to_device(pooled[split][0][:, 0]))
            return torch.log_softmax(logits.float(), dim=-1).cpu()

        trainer = Trainer(
            _ProbedLayers(model),
            optimizer,
            schedule=schedule_for(stage),
            checkpoint=self.layout.checkpoint(self.fold.fold, score_set(self.name, "lp")),
            seed=self.config.seed,
            max_grad_norm=stage.max_grad_norm or None,
            set_train_mode=lambda probed: _frozen_frame_layers(probed.classifier),
            select="holdout_ua",
            description=f"fold {self.fold.fold} {self.name} linear probe",
            progress=self.progress,
            runtime=self.runtime,
            fingerprint=fingerprint.as_dict(),
            class_weights=self.class_weights,
        )
        with self.timed("lp_epochs"):
            trainer.fit(stage.epochs, make_batches, lambda epoch: self._metrics(score("holdout"), "holdout"))
        trainer.restore_best()
        for parameter, was in trainable.items():  # as before the probe (an ssl encoder's CNN stays frozen)
            parameter.requires_grad_(was)
        return self._write("lp", model, score, trainer)

    # -- stage 2 ----------------------------------------------------------------------------
    def fine_tune(self, model: Classifier, fingerprint: Fingerprint) -> dict | None:
        stage = self.config.speech.fine_tune
        optimizer = optimizer_for(*frame_and_segment_parameters(model), stage, self.runtime)
        items = training_items(len(self.features["train"]), self.config.augment.copies)
        augmenters = build_augmenters(self.config)
        lengths = self.features["train"].lengths
        build = ChunkBuilder(self.features["train"], self.labels["train"].tolist(), augmenters)

        def make_batches(epoch, rng):
            plan = plan_chunk_batches(lengths, items, stage.batch_size, stage.chunk_frames, rng, len(augmenters))
            return epoch_loader(plan, build, self.runtime)

        def score(split):  # every rank together (the Trainer's evaluate_together; _write)
            return evaluate_full_length(model, self.features[split], self.runtime, spread=True)

        trainer = Trainer(
            model,
            optimizer,
            schedule=schedule_for(stage),
            forward=forward_masked,
            evaluate_together=True,
            checkpoint=self.layout.checkpoint(self.fold.fold, score_set(self.name, "ft")),
            seed=self.config.seed,
            max_grad_norm=stage.max_grad_norm or None,
            set_train_mode=_frozen_frame_layers if stage.freeze_batchnorm else None,
            select="holdout_ua",
            description=f"fold {self.fold.fold} {self.name} fine-tune",
            progress=self.progress,
            runtime=self.runtime,
            fingerprint=fingerprint.as_dict(),
            class_weights=self.class_weights,
            compile_shapes=chunk_shapes(stage.chunk_frames, self.runtime),
        )
        # The probed model's hold-out metrics are recorded (start); with keep_start_if_best it also
        # competes with the fine-tuned epochs (best_epoch -1: no epoch beat the probe, ft = lp).
        with self.timed("ft_epochs"):
            trainer.fit(
                stage.epochs,
                make_batches,
                lambda epoch: self._metrics(score("holdout"), "holdout"),
                evaluate_start=True,
                keep_start_if_best=stage.keep_start_if_best,
            )
        trainer.restore_best()
        return self._write("ft", model, score, trainer)


class StageOrderError(MerlibError, RuntimeError):
    """A stage was asked for before the stage it starts from."""


def check_stage_order(planned: dict[str, Stage], stages, fold: int, system: str) -> None:
    """Fine-tuning alone (`--stage ft`) needs the probe of its fold to be done."""
    if stages and "ft" in stages and "lp" not in stages and "lp" in planned and planned["lp"].state()[0] != "done":
        raise StageOrderError(f"fold {fold} {system}: fine-tuning starts from the linear probe, which has not run "
                              "in this fold yet: run --stage lp (or both) first")  # fmt: skip


def run_speech_fold(
    config: Config,
    system: str,
    fold: Fold,
    corpus_root,
    run_dir,
    cache_dir,
    stages=None,
    progress: bool = True,
    runtime: Runtime | None = None,
    pretraining: Stage | None = None,
    rerun_changed: bool = False,
    timings: dict | None = None,
) -> dict:
    """Linear probe then fine-tune system `system` of `config` (the run's config); a stage done
    with the same fingerprint is skipped, one done with another is refused (or, with
    `rerun_changed`, done again). Returns the summaries of the stages run (on rank 0). `timings`,
    when given, receives the wall seconds of each phase (SpeechFold.timings)."""
    plan = config.system(system)
    planned = speech_stages(config, system, fold, pathlib.Path(corpus_root), pathlib.Path(run_dir), pretraining)
    config = config.system_config(system)
    runtime = runtime or runtime_for(config)
    wanted = [stage for stage in plan.stages if stages is None or stage in stages]
    if runtime.is_main:
        check_stages(list(planned.values()), rerun_changed)
    runtime.barrier()
    check_stage_order(planned, stages, fold.fold, system)
    states = {name: stage.state()[0] for name, stage in planned.items()}
    if all(states[name] == "done" for name in wanted):
        return {}
    job = SpeechFold(config, plan, fold, corpus_root, run_dir, cache_dir, progress, runtime)
    model = build_transfer_model(config, run_dir).to(runtime.device)
    results = {}
    if "lp" in planned:
        lp_state = job.layout.weights(fold.fold, score_set(job.name, "lp"))
        if states["lp"] == "done":
            model.load_state_dict(load_checkpoint(lp_state))  # fine-tuning starts from the probed model
        elif "lp" in wanted:
            results["lp"] = job.linear_probe(model, planned["lp"].fingerprint)
    if "ft" in wanted and states["ft"] != "done":
        results["ft"] = job.fine_tune(model, planned["ft"].fingerprint)
    runtime.barrier()
    if timings is not None:
        timings.update(job.timings)
    return results
