"""A corpus's features on disk, in packed shards read one utterance at a time: memory that does
not grow with the corpus.

Storage is Kaldi's ark/scp (written and read with kaldiio, the format of Kaldi, ESPnet and
wespeaker's feature lists): each process that computes features appends to its own shard,
`<folder>/<tag>.ark` with its Kaldi index `<tag>.scp` (any Kaldi tool or `kaldiio.load_scp`
reads it) and merlib's index `<tag>.jsonl` (the utterance id, the matrix's byte offset, its
frames, and the source file's size and modification time). A line of `<tag>.jsonl` is written
after its matrix, so an entry exists only once its features are whole: an extraction killed
half-way keeps what it had finished. Several processes (DDP ranks, folds run side by side) each
write their own shard, never one file together.

Why not WebDataset or lhotse's Shar: they are sequential tar streams read through shuffle buffers.
merlib plans an epoch's batches by index (merlib.batches: the batches are a function of (seed,
epoch), whatever the workers, and a resumed run sees what an uninterrupted one saw), which needs
random access by utterance; an ark is read at an offset. Features are stored as float32, as
computed: a run gives the same numbers whether its features were just computed or read back.

`FeatureCache.compute_all` returns `StoredFeatures`: the shards' paths and three arrays (shard,
offset, frames; ~20 bytes an utterance), whose items are read from disk when asked for, so a
DataLoader worker receives the arrays, not the features. Features are keyed by the front-end
config (the folder) and by each source file's size and modification time: an edited or repaired
wav is computed again (the newer entry is used). An entry whose source is gone is still used.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile
import time
from typing import Iterator, Sequence

import kaldiio
import numpy as np
import torch

from merlib.audio.features import build_front_end, feature_key, read_audio, require_finite_features, to_mono
from merlib.config import FeatureConfig
from merlib.io import write_text


@dataclasses.dataclass(frozen=True)
class Entry:
    shard: str  # the ark's path
    offset: int  # of the matrix in the ark (kaldiio.load_mat's "ark:offset")
    frames: int
    source: tuple[int, int] | None  # the wav's (size, mtime_ns) when computed


class StoredFeatures(Sequence[torch.Tensor]):
    """Features of a list of utterances, read from their shards when indexed; `lengths` (frames)
    without reading any. Picklable and small: what a DataLoader worker is sent."""

    def __init__(self, shards: Sequence[str], shard: np.ndarray, offset: np.ndarray, frames: np.ndarray):
        self.shards = tuple(shards)
        self.shard, self.offset, self.frames = shard, offset, frames

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> "StoredFeatures":
        shards = sorted({entry.shard for entry in entries})
        number = {path: i for i, path in enumerate(shards)}
        return cls(
            shards,
            np.array([number[entry.shard] for entry in entries], dtype=np.int32),
            np.array([entry.offset for entry in entries], dtype=np.int64),
            np.array([entry.frames for entry in entries], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.offset)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        matrix = kaldiio.load_mat(f"{self.shards[self.shard[index]]}:{self.offset[index]}")
        return torch.from_numpy(np.array(matrix, dtype=np.float32))  # a writable copy of the read buffer

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> list[int]:
        return self.frames.tolist()

    def subset(self, indices: Sequence[int]) -> "StoredFeatures":
        index = np.asarray(indices, dtype=np.int64)
        return StoredFeatures(self.shards, self.shard[index], self.offset[index], self.frames[index])


def _source_stamp(source: pathlib.Path) -> tuple[int, int] | None:
    try:
        stat = source.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


class _ShardWriter:
    """This process's shard in a folder: opened on its first entry, appended to, one line of each
    index per entry (the merlib index last: it commits the entry)."""

    def __init__(self, folder: pathlib.Path):
        tag = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self.ark_path = folder / f"{tag}.ark"
        self.index_path = folder / f"{tag}.jsonl"
        self.scp_path = folder / f"{tag}.scp"
        self._files = None

    def write(self, utterance_id: str, features: torch.Tensor, source: tuple[int, int] | None) -> Entry:
        if self._files is None:
            self._files = [open(path, "ab") for path in (self.ark_path, self.scp_path, self.index_path)]
        ark, scp, index = self._files
        key = re.sub(r"\s", "_", utterance_id)  # a Kaldi key has no blanks; merlib's index keeps the id
        start = ark.tell()
        kaldiio.save_ark(ark, {key: features.numpy()})
        ark.flush()
        offset = start + len(key.encode()) + 1  # past "key "
        scp.write(f"{key} {self.ark_path.resolve()}:{offset}\n".encode())
        scp.flush()
        line = {"id": utterance_id, "offset": offset, "frames": int(features.shape[0]), "source": source}
        index.write((json.dumps(line) + "\n").encode())
        index.flush()
        return Entry(str(self.ark_path), offset, int(features.shape[0]), source)

    def close(self) -> None:
        for file in self._files or ():
            file.close()
        self._files = None


class FeatureCache:
    """Features of a corpus's utterances, computed once into shards (see the module's text).

    The folder is `<cache>/<front-end key>/`. A cache in a read-only location is used as it is:
    what is missing is computed into a temporary folder that is removed when the process ends.
    `device`: where the front end runs when features are computed (a GPU computes the log-mel
    too; its features differ from the CPU's in the last bits).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        corpus_root: str | os.PathLike,
        config: FeatureConfig,
        device: torch.device | str = "cpu",
    ):
        self.config = config
        self.corpus_root = pathlib.Path(corpus_root)
        self.folder = pathlib.Path(cache_dir) / feature_key(config)
        self.device = torch.device(device)
        self.front_end = build_front_end(config).to(self.device)
        self.writable = self._prepare_folder()
        self._entries: dict[str, list[Entry]] | None = None
        self._writer: _ShardWriter | None = None

    def _prepare_folder(self) -> bool:
        description = json.dumps(dataclasses.asdict(self.config), indent=2) + "\n"
        marker = self.folder / "features.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not marker.is_file() or marker.read_text() != description:
                write_text(marker, description)
            return os.access(self.folder, os.W_OK)
        except OSError:
            return False

    # -- the index ---------------------------------------------------------------------------
    def _read_index(self) -> dict[str, list[Entry]]:
        """Every shard's entries by id; a torn last line (a process killed while writing it) is skipped."""
        entries: dict[str, list[Entry]] = {}
        folders = [self.folder] + ([self._writer.ark_path.parent] if self._writer else [])
        for index_path in sorted({p for folder in folders for p in folder.glob("*.jsonl")}):
            ark = str(index_path.with_suffix(".ark"))
            with open(index_path, "rb") as lines:
                for line in lines:
                    try:
                        row = json.loads(line)
                        entry = Entry(ark, int(row["offset"]), int(row["frames"]),
                                      None if row["source"] is None else tuple(row["source"]))  # fmt: skip
                    except (ValueError, KeyError, TypeError):
                        continue
                    entries.setdefault(row["id"], []).append(entry)
        return entries

    def _lookup(self, utterance_id: str, stamp: tuple[int, int] | None) -> Entry | None:
        """The entry computed from the source as it is now (the latest, if it is gone)."""
        found = (self._entries or {}).get(utterance_id, [])
        if stamp is None:
            return found[-1] if found else None
        return next((entry for entry in reversed(found) if entry.source == stamp), None)

    def _shard_writer(self) -> _ShardWriter:
        if self._writer is None:
            folder = self.folder
            if not self.writable:
                folder = pathlib.Path(tempfile.mkdtemp(prefix="merlib-features-"))
                atexit.register(shutil.rmtree, folder, True)
            self._writer = _ShardWriter(folder)
        return self._writer

    # -- computing ---------------------------------------------------------------------------
    @torch.no_grad()
    def _compute(self, utterance_id: str, wav: str) -> Entry:
        source = self.corpus_root / wav
        stamp = _source_stamp(source)
        audio, rate = read_audio(source)
        waveform = to_mono(audio, rate, self.config.sample_rate, source).to(self.device)
        features = require_finite_features(self.front_end(waveform).float().cpu(), source, audio, rate)
        entry = self._shard_writer().write(utterance_id, features.contiguous(), stamp)
        self._entries.setdefault(utterance_id, []).append(entry)
        return entry

    def get(self, utterance_id: str, wav: str) -> torch.Tensor:
        """(frames, bins) float32 of one utterance: from the cache when its source is unchanged, else computed."""
        return self.compute_all([(utterance_id, wav)], progress=False)[0]

    def compute_all(
        self, items: Sequence[tuple[str, str]], description: str = "features", runtime=None, progress: bool = True
    ) -> StoredFeatures:
        """The features of every (id, wav), in order; those missing or stale are computed first.
        Under DDP (`runtime`) the ranks compute a share each, into their own shards."""
        from merlib.progress import progress_bar

        if self._entries is None:
            self._entries = self._read_index()
        stamps = [_source_stamp(self.corpus_root / wav) for _, wav in items]
        missing = [i for i, ((utterance_id, _), stamp) in enumerate(zip(items, stamps))
                   if self._lookup(utterance_id, stamp) is None]  # fmt: skip
        rank, world = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
        mine = missing[rank::world]
        try:
            for i in progress_bar(mine, progress and bool(mine), desc=description, unit="utt"):
                self._compute(*items[i])
        finally:
            if self._writer is not None:
                self._writer.close()
        if world > 1 and missing:
            runtime.barrier()  # every rank has written its share; read theirs
            self._entries = self._read_index()
        entries = []
        for (utterance_id, wav), stamp in zip(items, stamps):
            entry = self._lookup(utterance_id, stamp)
            if entry is None:  # another rank's share, in a folder this rank cannot see
                raise RuntimeError(f"{self.folder}: no features of {utterance_id} ({wav}) after extraction; "
                                   "the ranks must share the feature cache folder (merlib's data dir)")  # fmt: skip
            entries.append(entry)
        return StoredFeatures.of(entries)
