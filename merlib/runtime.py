"""Where a stage runs: the device, the precision, the data-loading workers, and the process
group when several processes train one model (DDP under `torchrun`).

- **Device** (`runtime.device`): `auto` takes CUDA if torch sees a GPU, else Apple's MPS, else
  the CPU; `cuda`, `cuda:N`, `mps` and `cpu` are taken as asked, and one that is not there is a
  `DeviceError` before anything is computed or written. Under `torchrun`, rank r of a node takes
  `cuda:<LOCAL_RANK>`.
- **Precision** (`runtime.precision`): `auto` is bf16 autocast on a CUDA device that supports it
  and on a CPU with native bf16 instructions (AVX512-BF16 or AMX: `merlib bench speech` measured
  it faster there), fp32 everywhere else; fp16 (with a gradient scaler) only when asked for.
  Autocast covers the forward passes and the loss; weights and optimiser states stay fp32.
- **Step choices** (`runtime.channels_last`, `cudnn_benchmark`, `compile`, `fused_optimizer`,
  `drop_ragged_batch`; each `auto | on | off`): how a training step runs, resolved here once
  (`STEP_CHOICES`). `auto` is on with CUDA, where they were chosen to help, and off on the CPU and
  MPS: on the CPU every one resolves off, so its training is bit for bit what it was without them
  (channels_last measured 0.79x on a 2-core Xeon; `merlib bench speech` reports each one's
  `step_choices` ratio on the machine it runs on). Each is applied in one place: channels_last and
  compile by the Trainer (merlib.train.loop), cudnn_benchmark by `Runtime.training_steps` around
  the Trainer's epochs only (evaluation's full-length segments take a new shape nearly every batch,
  and cuDNN would time its algorithms again for each), fused_optimizer by
  `optimizer_for` (merlib.train.common), drop_ragged_batch by `PlannedBatches` (merlib.batches).
- **Processes**: `torchrun --standalone --nproc_per_node=N -m merlib ...` sets RANK, WORLD_SIZE
  and LOCAL_RANK; the process group is started here (nccl on CUDA, gloo on the CPU). Each rank
  trains on a disjoint part of every global batch (the config's `batch_size` is the global one),
  gradients are averaged by DistributedDataParallel, full-length evaluations are spread over the
  ranks, and rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import platform
from dataclasses import dataclass

import torch

from merlib.errors import MerlibError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(MerlibError, RuntimeError):
    """The configured device or precision is not available on this machine."""


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles: CPUs where bf16 matrix products run natively."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"runtime.device: {name}, but torch sees no CUDA device here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu, or auto"
            )
        index = local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"runtime.device: {name}, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"runtime.device: {name}, but MPS is not available here; use --device cpu, or auto")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"runtime.precision: bf16, but {torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32"
        )
    return name


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32 | bf16 | fp16: what is used, after `auto` is resolved
    num_workers: int = 0
    rank: int = 0
    world_size: int = 1
    # the step choices, resolved (STEP_CHOICES): all off is how the CPU trains
    channels_last: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    fused_optimizer: bool = False
    drop_ragged_batch: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return AMP_DTYPES.get(self.precision)

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """Mixed precision for forward passes and losses (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def training_steps(self):
        """Around an epoch of training steps: cuDNN's autotuner (cudnn_benchmark) on for the few
        planned chunk shapes, and back as it was for whatever runs next (evaluation)."""
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = before

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling against underflow; bf16 has fp32's range and does not."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def to_device(self, batch):
        """Tensors (or dicts / tuples of them) onto the device; asynchronous from pinned memory."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=self.pin_memory)
        if isinstance(batch, dict):
            return {key: self.to_device(value) for key, value in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(value) for value in batch)
        return batch

    # -- several processes ----------------------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (filling caches), the other ranks after it (reading them)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (metrics, choices): one set of results for all."""
        if not self.distributed:
            return obj
        holder = [obj]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def all_gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, obj)
        return gathered

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch norm's running statistics) on every rank: DDP trains without
        broadcasting them, so the ranks' differ until an evaluation spread over the ranks needs one model."""
        if self.distributed:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def all_reduce_sum(self, *values: float) -> list[float]:
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def step_choices(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in STEP_CHOICES}

    def describe(self) -> dict:
        """What a run records in versions.json and in its histories."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else _cpu_name()
        return {
            "device": str(self.device),
            "device_name": name,
            "precision": self.precision,
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "step_choices": self.step_choices(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        }


CPU_FP32 = Runtime(torch.device("cpu"), "fp32")

# runtime.<choice>: what `on` does. `auto` takes them on CUDA only.
STEP_CHOICES = {
    "channels_last": "convolution weights (and so activations) in NHWC, the layout of tensor-core kernels",
    "cudnn_benchmark": "cuDNN times its convolution algorithms once per input shape and keeps the fastest",
    "compile": "torch.compile of the training forward, one static graph per planned chunk length",
    "fused_optimizer": "SGD / Adam update in one fused kernel (fused=True), no host sync under fp16 loss scaling",
    "drop_ragged_batch": "an epoch's last, partial batch is left out (one shape fewer to compile and tune)",
}


# Measured here (torch 2.9.1, 2-core Xeon): the backward of the speech ResNet34 (8 and 32 channels,
# 32 x 200 frames) with NHWC weights in fp32 ends the process (a segfault, or glibc's "corrupted
# size"); a tiny one (2 channels, 8 x 24 x 16) and bf16 autocast run.
CPU_FP32_CHANNELS_LAST = "torch's CPU backward of the ResNet in NHWC crashes the process (segfault, torch 2.9.1)"


def resolve_step_choice(value: str, device: torch.device) -> bool:
    """auto | on | off → whether the choice is taken on `device` (auto: on CUDA only)."""
    return device.type == "cuda" if value == "auto" else value == "on"


def _cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo on Linux), and its core count."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "CPU"
    return f"{name}, {os.cpu_count()} cores"


def _start_process_group(device: torch.device) -> None:
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # rank 0 fills the feature cache while the others wait at a barrier: on a large corpus that
        # outlasts the default timeout (10 min for NCCL), which would kill a healthy job
        minutes = float(os.environ.get("MERLIB_DIST_TIMEOUT_MINUTES", DIST_TIMEOUT_MINUTES))
        torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes))


DIST_TIMEOUT_MINUTES = 120  # MERLIB_DIST_TIMEOUT_MINUTES overrides it


def runtime_for(config) -> Runtime:
    """The runtime of a config's `runtime:` section, in this process (a torchrun rank or alone)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.runtime.device, local_rank)
    precision = resolve_precision(config.runtime.precision, device)
    if world_size > 1:
        _start_process_group(device)
    choices = {name: resolve_step_choice(getattr(config.runtime, name), device) for name in STEP_CHOICES}
    if choices["channels_last"] and device.type == "cpu" and precision == "fp32":
        raise DeviceError(f"runtime.channels_last: on, in fp32 on the CPU: {CPU_FP32_CHANNELS_LAST}; use auto or off")
    return Runtime(device, precision, config.runtime.num_workers, rank, world_size, **choices)
