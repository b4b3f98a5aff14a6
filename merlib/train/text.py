"""BERT fine-tuning for one LOSO fold (paper 4.2.2): Adam, lr 2e-5, batch 32, cross-entropy,
dynamic padding; the epoch with the best hold-out UA is kept (the paper gives no epoch count).

Transcripts are tokenised once per corpus (cached on disk); the maximum length is chosen from
the corpus (a quantile of its token lengths) and the share of truncated transcripts reported.
Empty transcripts (IEMOCAP has non-verbal turns) are kept and counted — they get scores like
any other utterance, so fusion sees the same utterance set for both modalities.

Leakage diagnostic: IEMOCAP's scripted dialogues repeat lines across sessions, so LOSO text
scores are inflated by memorised lines; every fold reports the share of test transcripts seen
verbatim (case and punctuation normalised) in training, and UA on the unseen ones.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Sequence

import numpy as np
import torch

from merlib.batches import epoch_loader, plan_index_batches
from merlib.config import Config
from merlib.data.folds import Fold
from merlib.data.manifest import Utterance
from merlib.fingerprint import digest, file_identity
from merlib.io import as_disk_full, write_json
from merlib.layout import RunLayout
from merlib.metrics import split_metrics, unweighted_accuracy
from merlib.models.text import load_text_classifier, resolve_text_model
from merlib.runtime import CPU_FP32, Runtime, runtime_for
from merlib.scores import write_scores
from merlib.stages import check_stages, text_stage
from merlib.train.loop import Trainer, class_weights_for


def normalize_transcript(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def leakage_diagnostic(train_texts: Sequence[str], test_texts: Sequence[str], test_labels, test_predicted) -> dict:
    """Share of test transcripts seen verbatim in training, and UA on the unseen ones."""
    seen = {normalize_transcript(t) for t in train_texts if normalize_transcript(t)}
    is_seen = np.array([normalize_transcript(t) in seen for t in test_texts])
    labels, predicted = np.asarray(test_labels), np.asarray(test_predicted)
    unseen = ~is_seen
    return {
        "test_seen_in_training_share": float(is_seen.mean()) if len(is_seen) else 0.0,
        "test_unseen_count": int(unseen.sum()),
        "test_unseen_ua": unweighted_accuracy(labels[unseen], predicted[unseen]) if unseen.any() else None,
    }


class TokenizedCorpus:
    """Token ids of every transcript of a manifest, computed once and cached on disk.

    The cache is keyed by the transcripts, the quantile and the tokenizer's files (path, size,
    modification time): another tokenizer put in the same folder is not served stale ids. A
    damaged cache file is computed again; a read-only cache folder is used without writing."""

    def __init__(
        self,
        tokenizer,
        model_path: pathlib.Path,
        utterances: Sequence[Utterance],
        quantile: float,
        cache_dir: pathlib.Path,
    ):
        texts = {u.id: u.transcript for u in utterances}
        tokenizer_files = {name: file_identity(pathlib.Path(model_path) / name)
                           for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")}  # fmt: skip
        key = digest([str(model_path), tokenizer_files, quantile, sorted(texts.items())])
        path = pathlib.Path(cache_dir) / f"tokens-{key}.json"
        cached = None
        if path.is_file():
            try:
                cached = json.loads(path.read_text())
            except ValueError:  # damaged: tokenise again
                cached = None
        if cached is None:
            lengths = [len(ids) for ids in tokenizer(list(texts.values()), add_special_tokens=True)["input_ids"]]
            limit = int(min(np.ceil(np.quantile(lengths, quantile)), tokenizer.model_max_length))
            encoded = tokenizer(list(texts.values()), truncation=True, max_length=limit)["input_ids"]
            cached = {
                "max_length": limit,
                "truncated_share": float(np.mean([n > limit for n in lengths])),
                "ids": dict(zip(texts, encoded)),
            }
            try:
                write_json(path, cached, indent=None)
            except OSError:  # a read-only cache: the ids are used without being kept
                pass
        self.max_length, self.truncated_share, self.ids = cached["max_length"], cached["truncated_share"], cached["ids"]
        self.tokenizer = tokenizer

    def batch(self, utterance_ids: Sequence[str]) -> dict:
        """Dynamic padding: to the longest sequence of this batch."""
        return dict(self.tokenizer.pad({"input_ids": [self.ids[i] for i in utterance_ids]}, return_tensors="pt"))


def save_text_model(model, tokenizer, folder: pathlib.Path) -> pathlib.Path:
    """The fine-tuned classifier as a transformers folder (config, tokenizer, safetensors
    weights: loadable without running pickled code), written to a temporary folder and renamed."""
    import shutil

    temporary = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")  # per process: never another's
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        model.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
    except BaseException as error:
        full = as_disk_full(error, folder, temporary / "model.safetensors")
        shutil.rmtree(temporary, ignore_errors=True)
        if full is not None:
            raise full from error
        raise
    shutil.rmtree(folder, ignore_errors=True)
    temporary.rename(folder)
    return folder


class TextBuilder:
    """Builds (padded token ids, targets) for a planned batch of utterance indices."""

    def __init__(self, corpus: TokenizedCorpus, utterance_ids: Sequence[str], labels: torch.Tensor):
        self.corpus, self.utterance_ids, self.labels = corpus, utterance_ids, labels

    def __call__(self, indices: Sequence[int]) -> tuple[dict, torch.Tensor]:
        return self.corpus.batch([self.utterance_ids[i] for i in indices]), self.labels[list(indices)]


@torch.no_grad()
def score_texts(
    model, corpus: TokenizedCorpus, utterance_ids: Sequence[str], batch_size: int = 64, runtime: Runtime = CPU_FP32
) -> torch.Tensor:
    """Log-softmax scores (n, classes), on the CPU."""
    model.eval()
    scores = []
    with runtime.autocast():
        for start in range(0, len(utterance_ids), batch_size):
            logits = model(**runtime.to_device(corpus.batch(utterance_ids[start : start + batch_size]))).logits
            scores.append(torch.log_softmax(logits.float(), -1).cpu())
    return torch.cat(scores) if scores else torch.zeros(0, model.config.num_labels)


def run_text_fold(
    config: Config,
    system: str,
    fold: Fold,
    utterances: Sequence[Utterance],
    run_dir,
    cache_dir,
    progress: bool = True,
    runtime: Runtime | None = None,
    rerun_changed: bool = False,
) -> dict:
    """Fine-tune text system `system` of `config` (the run's config), keep the best hold-out
    epoch, write <system>_scores.csv and the fine-tuned model (<system>_model/). Done with the
    same fingerprint: skipped; with another: refused, or redone with `rerun_changed`. Returns
    the summary (on rank 0; {} elsewhere and when skipped)."""
    name = config.system(system).name
    stage = text_stage(config, system, fold, pathlib.Path(run_dir))
    config = config.system_config(system)
    runtime = runtime or runtime_for(config)
    layout = RunLayout(run_dir)
    if runtime.is_main:
        check_stages([stage], rerun_changed)
    runtime.barrier()
    if stage.state()[0] == "done":
        return {}
    text = config.text
    torch.manual_seed(config.seed)
    classes = list(config.labels)
    tokenizer, model = load_text_classifier(text.model, len(classes))
    model.to(runtime.device)
    with runtime.main_first():  # rank 0 tokenises and caches, the other ranks read the cache
        corpus = TokenizedCorpus(
            tokenizer, resolve_text_model(text.model), utterances, text.max_length_quantile, cache_dir
        )
    train_ids = [u.id for u in fold.train]
    train_labels = torch.tensor([classes.index(u.label) for u in fold.train])
    holdout_ids = [u.id for u in fold.holdout]
    holdout_labels = np.array([classes.index(u.label) for u in fold.holdout])
    optimizer = torch.optim.Adam(model.parameters(), lr=text.lr, weight_decay=text.weight_decay)

    build = TextBuilder(corpus, train_ids, train_labels)

    def make_batches(epoch, rng):
        return epoch_loader(plan_index_batches(len(train_ids), text.batch_size, rng), build, runtime)

    def score(ids):
        return score_texts(model, corpus, ids, runtime=runtime)

    def evaluate(epoch):
        return split_metrics(holdout_labels, score(holdout_ids).numpy(), "holdout")

    checkpoint = layout.checkpoint(fold.fold, name)
    trainer = Trainer(
        model,
        optimizer,
        checkpoint=checkpoint,
        seed=config.seed,
        select="holdout_ua",
        description=f"fold {fold.fold} {name}",
        progress=progress,
        runtime=runtime,
        fingerprint=stage.fingerprint.as_dict(),
        class_weights=class_weights_for(text.loss, train_labels, len(classes)),
    )
    history = trainer.fit(text.epochs, make_batches, evaluate)
    trainer.restore_best()
    if not runtime.is_main:
        runtime.barrier()
        return {}

    test_ids = [u.id for u in fold.test]
    holdout_scores, test_scores = score(holdout_ids), score(test_ids)
    write_scores(
        layout.scores(fold.fold, name),
        holdout_ids + test_ids,
        ["holdout"] * len(holdout_ids) + ["test"] * len(test_ids),
        [u.label for u in fold.holdout] + [u.label for u in fold.test],
        torch.cat([holdout_scores, test_scores]).numpy(),
        classes,
    )
    test_labels = np.array([classes.index(u.label) for u in fold.test])
    test_predicted = test_scores.argmax(1).numpy()
    test_metrics = split_metrics(test_labels, test_scores.numpy(), "test")
    summary = {
        "model": text.model,
        "best_epoch": trainer.best_epoch,
        "epochs_run": len(history),
        "max_length": corpus.max_length,
        "truncated_share": corpus.truncated_share,
        "empty_transcripts": {
            split: sum(not u.transcript.strip() for u in getattr(fold, split)) for split in ("train", "holdout", "test")
        },
        "holdout_ua": split_metrics(holdout_labels, holdout_scores.numpy(), "holdout")["holdout_ua"],
        "test_ua": test_metrics["test_ua"],
        "test_wa": test_metrics["test_wa"],
        "leakage": leakage_diagnostic(
            [u.transcript for u in fold.train + fold.holdout],
            [u.transcript for u in fold.test],
            test_labels,
            test_predicted,
        ),
        "history": history,
        "runtime": runtime.describe(),
        "fingerprint": stage.fingerprint.as_dict(),
    }
    save_text_model(model, tokenizer, layout.model_folder(fold.fold, name))
    write_json(layout.history(fold.fold, name), summary)  # last: it marks the stage done
    checkpoint.unlink(missing_ok=True)  # the training state; the fine-tuned model is kept in <system>_model/
    runtime.barrier()
    return summary
