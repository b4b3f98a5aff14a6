"""Vectors by key, kept as one (n, dim) tensor and its key list.

The linear probe's pooled vectors (merlib.train.speech) are tens of thousands of small tensors
a fold on IEMOCAP (segments × copies × chunks); saved as a dict of tensors, that is one pickled
object each, slow to write and to read and large on disk. Stored here as `{"keys": [...],
"vectors": (n, dim) tensor}`: one tensor whatever the count, read with torch.load's
weights_only. A file in the older dict format is read too.
"""

from __future__ import annotations

import pathlib
from typing import Iterable

import torch

from merlib.io import save_torch
from merlib.models.checkpoints import load_checkpoint


class VectorStore:
    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)
        self.rows: dict[str, int] = {}
        self.vectors = torch.zeros(0)
        self._added: list[torch.Tensor] = []  # rows after `vectors`, stacked on the next read
        self.changed = False
        if self.path.is_file():
            saved = load_checkpoint(self.path)
            if "vectors" in saved and "keys" in saved:
                self.rows = {key: row for row, key in enumerate(saved["keys"])}
                self.vectors = saved["vectors"]
            else:  # the dict of tensors written before this store
                self.update(saved.items())
                self.changed = False

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __getitem__(self, key: str) -> torch.Tensor:
        self._stack()
        return self.vectors[self.rows[key]]

    def update(self, pairs: Iterable[tuple[str, torch.Tensor]]) -> None:
        for key, vector in pairs:
            if key in self.rows:
                raise KeyError(f"{key}: already in the vector store")
            self.rows[key] = len(self.rows)
            self._added.append(vector)
            self.changed = True

    def _stack(self) -> None:
        if self._added:
            added = torch.stack(self._added)
            self.vectors = torch.cat([self.vectors.reshape(-1, added.shape[1]).to(added.dtype), added])
            self._added = []

    def save(self) -> pathlib.Path:
        self._stack()
        path = save_torch({"keys": list(self.rows), "vectors": self.vectors}, self.path)
        self.changed = False
        return path
