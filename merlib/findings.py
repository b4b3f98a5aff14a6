"""What looks wrong in a finished run: the notes report.html puts first, each pointing at the
section of the report that shows it. They are read off the saved histories and scores (never a
rerun) and say what is seen, how often, and the likely cause or what to try; a run with nothing
to flag gets none.

- fine-tuning that ends below its own start (the probed model) on the hold-out in most folds;
- a fusion more than a UA point below its best input in a fold;
- a class a score set almost never recognises (recall below 10% in a fold);
- a hold-out far kinder than the test (mean UA gap over 10 points), with the likely reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from merlib.config import Config
from merlib.metrics import confusion, unweighted_accuracy
from merlib.plan import output_titles
from merlib.report import stage_histories
from merlib.results import collect_predictions

FUSION_SLACK = 0.01  # UA a fusion may lose to its best input in a fold before it is flagged
LOW_RECALL = 0.10
HOLDOUT_GAP = 0.10

# The report's sections a note can point at (their anchors: merlib.report_page.SECTIONS' headings)
SECTIONS = {"results": "Results", "training": "Training", "confusions": "Confusion matrices"}


@dataclass(frozen=True)
class Finding:
    section: str  # a key of SECTIONS
    text: str


def fine_tuning_below_its_start(run_dir, config: Config) -> list[Finding]:
    """Fine-tuned score sets whose every epoch stayed below the probed start on the hold-out in
    more than half of the folds (the kept epoch is then a worse model than the one it started from,
    unless keep_start_if_best kept the probe)."""
    titles, found = output_titles(config), []
    for output in config.outputs():
        histories = {f: h for f, h in stage_histories(run_dir, output).items() if h.get("start") and h.get("history")}
        start_and_best = {f: (h["start"]["holdout_ua"], max(e["holdout_ua"] for e in h["history"]))
                          for f, h in histories.items()}  # fmt: skip
        below = {f: (start, best) for f, (start, best) in start_and_best.items() if best < start}
        if histories and len(below) > len(histories) / 2:
            folds = ", ".join(f"fold {f} {100 * start:.1f} → {100 * best:.1f}" for f, (start, best) in below.items())
            kept = sum(histories[f].get("best_epoch") == -1 for f in below)  # keep_start_if_best kept the probe
            advice = (f"the probe itself was kept in {kept} of them (keep_start_if_best), so there the fine-tuned "
                      "scores are the probe's" if kept else
                      "the kept epoch is a model worse on the hold-out than the one it started from: try a lower "
                      "learning rate or fewer epochs, or `fine_tune.keep_start_if_best: true` to keep the probe "
                      "when no epoch beats it")  # fmt: skip
            found.append(Finding("training", (
                f"{titles.get(output, output)}: no fine-tuning epoch reached the probed model's hold-out UA in "
                f"{len(below)} of {len(histories)} folds ({folds}); {advice}.")))  # fmt: skip
    return found


def fusions_below_their_best_input(run_dir, config: Config) -> list[Finding]:
    """Folds where a fusion's test UA is more than FUSION_SLACK below its best input's."""
    wanted = {name for fusion in config.fusions for name in [fusion.name, *fusion.inputs]}
    ua = {system: {fold: unweighted_accuracy(*answers) for fold, answers in folds.items()}
          for system, folds in collect_predictions(run_dir, sorted(wanted)).items()}  # fmt: skip
    found = []
    for fusion in config.fusions:
        lost = []
        for fold, fused in sorted(ua.get(fusion.name, {}).items()):
            inputs = {name: ua[name][fold] for name in fusion.inputs if fold in ua.get(name, {})}
            if inputs:
                best = max(inputs, key=inputs.get)
                if fused < inputs[best] - FUSION_SLACK:
                    lost.append(f"fold {fold}: {100 * fused:.1f}% vs {best} {100 * inputs[best]:.1f}%")
        if lost:
            why = ("its weight, chosen on the hold-out, did not carry over to the test speakers (see the fusion "
                   "weight curves), or an input's scores are overconfident" if fusion.method == "weighted" else
                   "with equal weights on z-normalised scores, the weaker input outvotes the better one where "
                   "it is confidently wrong")  # fmt: skip
            found.append(Finding("results", f"{fusion.name} is below its best input in {len(lost)} fold(s) "
                                            f"({'; '.join(lost)}): {why}."))  # fmt: skip
    return found


def classes_hardly_recognised(run_dir, config: Config) -> list[Finding]:
    """Score sets that recall less than LOW_RECALL of a class's test utterances in a fold."""
    found = []
    for system, folds in collect_predictions(run_dir, config.outputs()).items():
        missed = []
        for fold, (y_true, y_pred) in sorted(folds.items()):
            counts = confusion(y_true, y_pred, config.labels)  # rows: true class, in data.labels order
            for k, emotion in enumerate(config.labels):
                total = int(counts[k].sum())
                if total and counts[k, k] / total < LOW_RECALL:
                    missed.append(f"{emotion} in fold {fold} ({100 * counts[k, k] / total:.1f}% of {total})")
        if missed:
            found.append(Finding("confusions", (
                f"{system} recalls less than {100 * LOW_RECALL:.0f}% of a class: {'; '.join(missed)}. The pooled "
                "confusion matrix averages this away; the per-fold table shows the fold.")))  # fmt: skip
    return found


def holdout_kinder_than_test(run_dir, config: Config) -> list[Finding]:
    """Score sets whose hold-out UA exceeds their test UA by more than HOLDOUT_GAP on average."""
    if config.data.protocol == "released" and config.data.splits.holdout:
        cause = (
            f"the hold-out is the corpus's own {', '.join(config.data.splits.holdout)} split: it may share "
            "recordings' conditions or speakers with training that the test sets do not"
        )
    elif config.data.holdout == "stratified":
        cause = (
            "the hold-out is drawn from the training sessions' speakers (`data.holdout: stratified`), so it "
            "rewards what a model learnt of those speakers, and it picks the epochs and the fusion weight; "
            "`data.holdout: session` holds out a whole training session instead, new speakers as the test's"
        )
    else:
        cause = (
            "the hold-out session's speakers are new, as the test's are, so the sessions themselves differ "
            "(or the hold-out is small and noisy): compare the folds in the per-fold table"
        )
    titles, gaps = output_titles(config), []
    for output in config.outputs():
        histories = [h for h in stage_histories(run_dir, output).values() if "holdout_ua" in h and "test_ua" in h]
        if histories:
            holdout, test = np.mean([h["holdout_ua"] for h in histories]), np.mean([h["test_ua"] for h in histories])
            if holdout - test > HOLDOUT_GAP:
                gaps.append(f"{titles.get(output, output)} {100 * holdout:.1f}% vs {100 * test:.1f}%")
    if not gaps:
        return []
    return [Finding("results", f"Hold-out UA far above test UA (mean over folds): {'; '.join(gaps)}. Likely: {cause}.")]


CHECKS = (fine_tuning_below_its_start, fusions_below_their_best_input, classes_hardly_recognised,
          holdout_kinder_than_test)  # fmt: skip


def run_findings(run_dir, config: Config) -> list[Finding]:
    """Every note of every check, in the order of CHECKS."""
    return [finding for check in CHECKS for finding in check(run_dir, config)]


def findings_markdown(findings: list[Finding]) -> str:
    """A bullet per note, each linking to the report section that shows it."""
    if not findings:
        return "Nothing flagged: no check below found anything that looks wrong in this run."
    return "\n".join(f"- **[{SECTIONS[f.section]}](#{f.section})**: {f.text}" for f in findings)
