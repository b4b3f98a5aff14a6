"""Text branch: offline model, clear errors, fine-tuning learns, leakage diagnostic, resume."""

import pytest
import torch

from merlib.config import load_config
from merlib.models.text import TextModelNotFoundError, load_text_classifier, resolve_text_model
from merlib.train.loop import Trainer
from merlib.train.text import leakage_diagnostic, normalize_transcript

SENTENCES = [
    "I am furious with you!",
    "This is wonderful news.",
    "The train leaves at ten.",
    "I miss him so much.",
    "Stop lying to me.",
    "We won the match!",
    "Please sign here.",
    "Nobody came to the funeral.",
] * 2
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3] * 2)


def test_offline_model_loads_without_network_and_gives_four_logits(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    # every way out is closed: a download attempt would fail this test, not fall back silently
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    tokenizer, model = load_text_classifier("minilm-offline", 4)
    assert model.config.model_type == "bert" and model.config.num_labels == 4
    with torch.no_grad():
        logits = model(**tokenizer(["Hello there."], return_tensors="pt")).logits
    assert logits.shape == (1, 4)


def test_missing_model_directory_says_where_to_put_it(tmp_path):
    with pytest.raises(
        TextModelNotFoundError, match=r"not a local model directory[\s\S]*model: /data/models/bert-base-uncased"
    ):
        resolve_text_model(str(tmp_path / "bert-base-uncased"))
    with pytest.raises(TextModelNotFoundError, match="never downloads"):
        resolve_text_model("bert-base-uncased")


def batches(tokenizer, size=8):
    def make(epoch, rng):
        order = rng.permutation(len(SENTENCES))
        for start in range(0, len(order), size):
            index = order[start : start + size]
            yield dict(tokenizer([SENTENCES[i] for i in index], padding=True, return_tensors="pt")), LABELS[index]

    return make


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return load_text_classifier("minilm-offline", 4)


def test_fine_tuning_lowers_the_training_loss():
    tokenizer, model = fresh_model()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-4), progress=False)
    history = trainer.fit(3, batches(tokenizer))
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_text_resume_equals_an_uninterrupted_run(tmp_path):
    tokenizer, straight = fresh_model()
    Trainer(straight, torch.optim.Adam(straight.parameters(), lr=1e-4), seed=1, progress=False).fit(
        2, batches(tokenizer)
    )
    _, first = fresh_model()
    Trainer(
        first, torch.optim.Adam(first.parameters(), lr=1e-4), seed=1, checkpoint=tmp_path / "t.ckpt", progress=False
    ).fit(1, batches(tokenizer))
    _, resumed = fresh_model(seed=5)
    Trainer(
        resumed, torch.optim.Adam(resumed.parameters(), lr=1e-4), seed=1, checkpoint=tmp_path / "t.ckpt", progress=False
    ).fit(2, batches(tokenizer))
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_leakage_diagnostic_on_a_hand_made_example():
    train = ["I can't believe it!", "The train leaves at ten.", ""]
    test = ["i CAN'T believe it", "The train leaves at ten", "Something new.", "Another new one", ""]
    labels = ["ang", "neu", "hap", "sad", "neu"]
    predicted = ["ang", "neu", "hap", "neu", "neu"]
    result = leakage_diagnostic(train, test, labels, predicted)
    # seen: the first two (case and punctuation normalised); an empty transcript is never "seen"
    assert result["test_seen_in_training_share"] == pytest.approx(2 / 5)
    assert result["test_unseen_count"] == 3
    # unseen: hap→hap right, sad→neu wrong, neu→neu right: recalls hap 1, sad 0, neu 1
    assert result["test_unseen_ua"] == pytest.approx(2 / 3)
    assert normalize_transcript("  Well,  THAT's it!! ") == "well that's it"


def test_demo_and_paper_configs_name_text_models():
    assert load_config("configs/demo.yaml").text.model == "minilm-offline"
    assert load_config("configs/paper.yaml").text.lr == 2e-5


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:hold-out")
def test_tiny_text_fold_writes_scores_and_the_leakage_report(tmp_path, tiny_demo_corpus):
    import json

    from merlib.data.folds import make_fold
    from merlib.scores import read_scores
    from merlib.train.text import run_text_fold

    corpus, utterances = tiny_demo_corpus
    config = load_config("configs/demo.yaml", overrides={"text": {"epochs": 1, "batch_size": 16}})
    fold = make_fold(utterances, 4)
    summary = run_text_fold(config, "text", fold, utterances, tmp_path, tmp_path / "cache", progress=False)
    scores = read_scores(tmp_path / "fold4" / "text_scores.csv")
    assert set(scores["id"]) == {u.id for u in fold.holdout + fold.test}
    saved = json.loads((tmp_path / "fold4" / "text_history.json").read_text())
    assert saved["best_epoch"] == 0 and 0 <= saved["leakage"]["test_seen_in_training_share"] <= 1
    assert summary["max_length"] > 2 and 0 <= summary["truncated_share"] < 0.05
    assert not (tmp_path / "fold4" / "text.ckpt").exists()
    assert run_text_fold(config, "text", fold, utterances, tmp_path, tmp_path / "cache", progress=False) == {}
