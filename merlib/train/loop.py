"""The one training loop: epochs of batches, a per-epoch learning-rate schedule, gradient
clipping, a divergence guard, per-epoch metrics, best-epoch tracking and atomic checkpoints
that resume exactly where a run stopped; on any device, in mixed precision, and under DDP.

Reproducibility: epoch e draws its batches from `np.random.default_rng([seed, e])` and seeds
torch with `(seed, e, rank)`, so a resumed run gives the same result as an uninterrupted one.

Several processes (`torchrun`): the model is wrapped in DistributedDataParallel for training;
each rank's batches are its slice of the global batch, and its loss is weighted by its share of
that batch, so the averaged gradient is the global batch's mean. Evaluation is spread over the
ranks (`evaluate_together`) or done by rank 0 alone; either way every rank gets the same metrics
and keeps the same best epoch. Rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import copy
import pathlib
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from merlib.errors import MerlibError
from merlib.io import save_torch
from merlib.models.checkpoints import load_checkpoint
from merlib.progress import progress_bar
from merlib.runtime import CPU_FP32, Runtime

GUARD_EVERY = 50  # on an accelerator, steps between looks at the losses (each look waits for the device)


# (checkpoint, its last finished epoch, 0-based) of this process's latest save: what an
# interrupted command tells the user it will resume from
last_checkpoint: tuple[pathlib.Path, int] | None = None


class TrainingDivergedError(MerlibError, RuntimeError):
    """The loss became NaN or infinite; the last finished epoch's checkpoint is kept."""


@dataclass
class Schedule:
    """lr factor per epoch (0-based): linear warm-up, constant, then halved every `halve_every`.

    Paper: constant for the first 8 epochs, then halved every other epoch.
    """

    constant_epochs: int = 8
    halve_every: int = 2
    warmup_epochs: int = 0

    def factor(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        if epoch < self.constant_epochs:
            return 1.0
        return 0.5 ** ((epoch - self.constant_epochs) // self.halve_every + 1)


def compiled(model: torch.nn.Module, shapes: int) -> torch.nn.Module:
    """`model` compiled with one static graph per input shape (`shapes` of them: the planned chunk
    lengths are few, and a graph specialised to its shape is fused and planned for it where a
    dynamic one serves all lengths more slowly). Dynamo gives up compiling a function after
    `recompile_limit` graphs (default 8), falling back to eager: raised here to fit them, with room
    for the folds and stages of one process that compile the same model class again."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * shapes)
    return torch.compile(model, dynamic=False)


def default_forward(model: torch.nn.Module, inputs) -> torch.Tensor:
    if isinstance(inputs, dict):
        output = model(**inputs)
        return output.logits if hasattr(output, "logits") else output
    return model(inputs)


class Trainer:
    """Train `model` with `optimizer` (param groups carry their base lr in `initial_lr`).

    make_batches(epoch, rng) yields (inputs, targets) or (inputs, targets, global batch size),
    on the CPU (the loop moves them to the runtime's device); evaluate(epoch) returns metrics such as
    {"holdout_ua": 0.61}; `select` names the metric whose best epoch is kept (higher is better).
    `class_weights` (one per class, e.g. from `class_weights_for`) weigh the cross-entropy: the
    `weighted_ce` loss for unbalanced corpora. With `evaluate_start`, the model as it comes in is
    evaluated first (`evaluate(-1)`, kept in `start`): fine-tuning then shows where the probed
    model stood. With `keep_start_if_best` too, the start competes with the epochs, and best_epoch
    -1 means no epoch beat it. `evaluate_together`: `evaluate` is called on every rank and spreads
    its work over them (else rank 0 alone evaluates).

    The runtime's step choices taken here: `channels_last` converts the model's convolution
    weights to NHWC once (for evaluation too: it is the same model); `compile` compiles what the
    training steps call, only when the caller says how many input shapes its batches take
    (`compile_shapes`: the planned chunk lengths, one more with a ragged last batch), since a graph
    is compiled per shape; evaluation calls the uncompiled model, eager, on any length.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        schedule: Schedule | None = None,
        checkpoint: str | pathlib.Path | None = None,
        seed: int = 0,
        max_grad_norm: float | None = None,
        forward: Callable = default_forward,
        set_train_mode: Callable | None = None,
        select: str | None = None,
        description: str = "train",
        progress: bool = True,
        runtime: Runtime = CPU_FP32,
        fingerprint: dict | None = None,
        class_weights: torch.Tensor | None = None,
        evaluate_together: bool = False,
        compile_shapes: int = 0,
    ):
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)  # in place: the optimizer's parameters stay the same
        self.model, self.optimizer, self.runtime, self.fingerprint = model, optimizer, runtime, fingerprint
        self.compile_shapes = compile_shapes
        self.class_weights = None if class_weights is None else class_weights.float().to(runtime.device)
        self.train_model = model  # what training steps call: `model`, or its DDP wrapper once fit() starts
        self.scaler = runtime.grad_scaler()
        self.schedule = schedule or Schedule(constant_epochs=10**9)
        self.checkpoint = pathlib.Path(checkpoint) if checkpoint else None
        self.seed, self.max_grad_norm, self.forward = seed, max_grad_norm, forward
        self.set_train_mode = set_train_mode or (lambda m: m.train())
        self.select, self.description, self.progress = select, description, progress
        self.evaluate_together = evaluate_together
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.history: list[dict] = []
        self.start: dict | None = None
        self.best_epoch: int | None = None
        self.best_state: dict | None = None

    # -- checkpoints ---------------------------------------------------------------------
    def _save(self, epoch: int) -> None:
        global last_checkpoint
        if self.checkpoint is None or not self.runtime.is_main:
            return
        last_checkpoint = (pathlib.Path(self.checkpoint), epoch)
        save_torch(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "epoch": epoch,
                "history": self.history,
                "start": self.start,
                "best_epoch": self.best_epoch,
                "best_state": self.best_state,
                "fingerprint": self.fingerprint,
            },
            self.checkpoint,
        )

    def _resume(self) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to run."""
        self.runtime.barrier()  # every rank reads what rank 0 finished writing
        if self.checkpoint is None or not self.checkpoint.is_file():
            return 0
        state = load_checkpoint(self.checkpoint)
        found = state.get("fingerprint")
        if self.fingerprint is not None and (found or {}).get("hash") != self.fingerprint["hash"]:
            from merlib.fingerprint import Fingerprint, refusal

            raise refusal(f"the checkpoint {self.checkpoint.name}", self.checkpoint.parent, found,
                          Fingerprint(self.fingerprint["parts"]))  # fmt: skip
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.history, self.best_epoch, self.best_state = state["history"], state["best_epoch"], state["best_state"]
        self.start = state.get("start")
        return state["epoch"] + 1

    def _evaluate(self, evaluate: Callable[[int], dict], epoch: int) -> dict:
        """Every rank gets the same metrics: with `evaluate_together`, every rank calls `evaluate`
        (which spreads its work over the ranks: forward_each's `spread`) on rank 0's model, its
        batch-norm statistics included; else rank 0 evaluates alone and broadcasts them."""
        if self.evaluate_together:
            self.runtime.broadcast_buffers(self.model)
            return evaluate(epoch)
        return self.runtime.broadcast(evaluate(epoch) if self.runtime.is_main else None)

    def _metric_of(self, epoch: int) -> float:
        return (self.start if epoch == -1 else self.history[epoch])[self.select]

    def _keep_if_best(self, epoch: int, row: dict) -> None:
        if self.select is not None and (self.best_epoch is None or row[self.select] > self._metric_of(self.best_epoch)):
            self.best_epoch = epoch
            self.best_state = copy.deepcopy(self.model.state_dict())

    # -- training ------------------------------------------------------------------------
    def training_model(self) -> torch.nn.Module:
        """What the training steps call: the model, wrapped for DDP under several processes, and
        compiled when the runtime says so and the caller gave its shapes."""
        model = self.model
        if self.runtime.distributed:
            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            # No buffer broadcast every step: batch norm trains on each rank's batch statistics either
            # way, and only rank 0's running statistics are used (it saves them, and an evaluation
            # spread over the ranks broadcasts them first: _evaluate); gradients as views of the
            # reduction buckets save a copy of every gradient per step.
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=device_ids, broadcast_buffers=False, gradient_as_bucket_view=True
            )
        if self.runtime.compile and self.compile_shapes:
            model = compiled(model, self.compile_shapes)
        return model

    def fit(
        self,
        epochs: int,
        make_batches: Callable[[int, np.random.Generator], Iterable],
        evaluate: Callable[[int], dict] | None = None,
        evaluate_start: bool = False,
        keep_start_if_best: bool = False,
    ) -> list[dict]:
        first = self._resume()
        self.train_model = self.training_model()
        if evaluate_start and first == 0 and evaluate is not None:
            self.start = self._evaluate(evaluate, -1)
            if self.progress and self.runtime.is_main:
                print(
                    f"{self.description}: start, " + ", ".join(f"{k} {v:.3f}" for k, v in self.start.items()),
                    flush=True,
                )
            if keep_start_if_best:
                self._keep_if_best(-1, self.start)
        for epoch in range(first, epochs):
            torch.manual_seed((self.seed * 100_003 + epoch) * 1_009 + self.runtime.rank)
            rng = np.random.default_rng([self.seed, epoch])
            factor = self.schedule.factor(epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            started = time.perf_counter()
            loss_sum, count = self.run_epoch(epoch, make_batches(epoch, rng))
            row = {
                "epoch": epoch,
                "lr_factor": factor,
                "train_loss": loss_sum / max(count, 1),
                "seconds": round(time.perf_counter() - started, 2),
            }
            if evaluate is not None:
                row |= self._evaluate(evaluate, epoch)
            self.history.append(row)
            if (
                self.progress and self.runtime.is_main
            ):  # one line per epoch: readable in logs and in papermill-run notebooks
                metrics = ", ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if k not in ("epoch", "lr_factor", "seconds")
                )
                print(f"{self.description}: epoch {epoch + 1}/{epochs}, {metrics} ({row['seconds']:.0f} s)", flush=True)
            self._keep_if_best(epoch, row)
            self._save(epoch)
        return self.history

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, the mean over the batch's items; with class weights, each item's loss
        weighted and still divided by the item count (not by the weights' sum, as torch's default
        does), so that the ranks' shares of a DDP batch add up to the global batch's loss."""
        if self.class_weights is None:
            return torch.nn.functional.cross_entropy(logits, targets)
        items = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        return (self.class_weights[targets] * items).mean()

    def run_epoch(self, epoch: int, batches: Iterable) -> tuple[float, int]:
        """One pass over the batches; returns (loss summed over items, items), over all ranks.

        Losses stay on the device (no host synchronisation per step on a GPU); the divergence
        guard looks at them every step on the CPU and every `GUARD_EVERY` steps elsewhere.
        """
        runtime = self.runtime
        self.set_train_mode(self.model)
        guard_every = 1 if runtime.device.type == "cpu" else GUARD_EVERY
        loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=runtime.device)
        count = 0
        shown = self.progress and runtime.is_main
        with runtime.training_steps():
            for step, batch in enumerate(
                progress_bar(batches, shown, unit="batch", desc=f"{self.description} {epoch + 1}")
            ):
                inputs, targets = runtime.to_device(batch[0]), runtime.to_device(batch[1])
                global_size = batch[2] if len(batch) > 2 else len(targets) * runtime.world_size
                with runtime.autocast():
                    logits = self.forward(self.train_model, inputs)
                loss = self._loss(logits.float(), targets)
                first_bad = torch.where(torch.isfinite(loss.detach()) | (first_bad >= 0), first_bad, step)
                if step % guard_every == guard_every - 1:
                    self._stop_if_diverged(first_bad, epoch)
                # DDP averages the ranks' gradients: weight each rank's mean by its share of the batch
                weighted = loss * (len(targets) * runtime.world_size / global_size)
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler:
                    self.scaler.scale(weighted).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    weighted.backward()
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                if self.scaler:  # with a fused optimiser it takes the inf check on the device, no host sync
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                loss_sum += loss.detach().double() * len(targets)
                count += len(targets)
        self._stop_if_diverged(first_bad, epoch)
        total, count = runtime.all_reduce_sum(loss_sum.item(), count)
        return total, int(count)

    def _stop_if_diverged(self, first_bad: torch.Tensor, epoch: int) -> None:
        """The divergence guard, decided together by all ranks (one rank stopping alone would
        leave the others waiting at the next gradient exchange)."""
        step = int(first_bad.item())
        (diverged,) = self.runtime.all_reduce_sum(float(step >= 0))
        if diverged:
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            where = f"step {step + 1}" if step >= 0 else "a step of another process"
            raise TrainingDivergedError(
                f"{self.description}: the loss is not finite (nan or inf) at epoch {epoch + 1}, {where} (lr {lrs}). "
                "Lower the learning rate, add warm-up or gradient clipping in the config; "
                + (
                    f"the checkpoint of the last finished epoch is kept at {self.checkpoint}."
                    if self.checkpoint
                    else "nothing was checkpointed."
                )
            )

    def restore_best(self) -> None:
        """Load the state of the best epoch by `select` (no-op without selection)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def class_weights_for(loss: str, train_labels, n_classes: int) -> torch.Tensor | None:
    """The cross-entropy's class weights of a `loss` choice (`ce`: none; `weighted_ce`:
    n / (classes × n_class) over the training labels (class indices), scikit-learn's "balanced",
    whose mean over the training items is 1, so the loss keeps the scale of `ce`; a class absent
    from training gets weight 0, it cannot be learnt anyway)."""
    if loss == "ce":
        return None
    if loss != "weighted_ce":
        raise ValueError(f"loss {loss!r}: use ce or weighted_ce")
    counts = torch.bincount(torch.as_tensor(train_labels, dtype=torch.long), minlength=n_classes).double()
    present = counts > 0
    weights = torch.zeros(n_classes, dtype=torch.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()
