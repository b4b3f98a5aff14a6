"""The run's report, section by section, from its saved results only: `report.html`, and the same
sections shown one by one in `notebooks/40_fusion.ipynb`.

A section is a heading, a paragraph saying how to read it, and what it shows (tables, figures,
Markdown), read from the run folder: summary.csv and claims.csv (written by merlib.recipe.finish),
fusion.json, the scores and the histories. Nothing here fits, trains or writes results; writing
the page also writes each figure under `figures/` (PNG, SVG and the CSV of its numbers).

The page is built without a kernel: each shown object becomes the output a notebook would hold
(IPython's display formatter for tables, a PNG for figures), and nbconvert renders the whole with
the `offline_report` template (JupyterLab's page, no script from a CDN).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import pathlib
from typing import Callable

import pandas as pd

from merlib.config import Config
from merlib.errors import MerlibError

REPORT_TEMPLATES = pathlib.Path(__file__).parent / "templates"


class ReportError(MerlibError, FileNotFoundError):
    """A run whose results are not written yet."""


@dataclasses.dataclass
class RunResults:
    """What a section reads: the run folder, its config, and the tables recipe.finish wrote.
    `figures`: the folder each figure is saved to (with its numbers), or None to only show it."""

    run_dir: pathlib.Path
    config: Config
    figures: pathlib.Path | None = None

    @property
    def summary(self) -> pd.DataFrame:
        return _table(self.run_dir / "summary.csv")

    @property
    def claims(self) -> pd.DataFrame:
        return _table(self.run_dir / "claims.csv")

    @property
    def titles(self) -> dict[str, str]:
        from merlib.plan import output_titles

        return output_titles(self.config)

    def saved(self, figure, data: pd.DataFrame | None, name: str):
        if self.figures is not None:
            from merlib.plots import save_figure

            save_figure(figure, data, self.figures, name)
        return figure


def results_current(run_dir: str | pathlib.Path) -> bool:
    """Whether summary.csv and claims.csv exist and are newer than every score and history file of
    the folds (else the recipe's `finish` has to run: folds were run notebook by notebook, or again)."""
    from merlib.layout import RunLayout

    run_dir = pathlib.Path(run_dir)
    written = [run_dir / "summary.csv", run_dir / "claims.csv"]
    if not all(path.is_file() for path in written):
        return False
    layout = RunLayout(run_dir)
    inputs = [path for fold in layout.folds() for path in layout.results(fold)]
    return min(path.stat().st_mtime for path in written) >= max((path.stat().st_mtime for path in inputs), default=0)


def _table(path: pathlib.Path) -> pd.DataFrame:
    """A CSV the recipe wrote; a plan with no claims, or a run with no scores yet, wrote none."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def open_results(run_dir: str | pathlib.Path, config: Config, save_figures: bool = False) -> RunResults:
    """The results of a run whose folds, fusions, summary and claims are written; else ReportError
    saying how to write them."""
    run_dir = pathlib.Path(run_dir)
    for name in ("summary.csv", "claims.csv"):
        if not (run_dir / name).is_file():
            raise ReportError(f"{run_dir / name}: not written yet; `merlib report {run_dir}` fuses the folds' "
                              "saved scores and writes the summary, the claims and report.html")  # fmt: skip
    return RunResults(run_dir, config, run_dir / "figures" if save_figures else None)


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def _hidden_index(table: pd.DataFrame):
    """A table without pandas' row numbers, floats as written to two decimals (the Styler's
    default is six), missing values blank."""
    return table.style.hide(axis="index").format(precision=2, na_rep="")


INTRO = (
    "What produced the run, the data it ran on, then every system and every fusion the run's plan declares "
    "(fusions fitted per fold on its hold-out), how each stage trained, confusion matrices, the fusion weight, and "
    "last the paper's claims checked on this run. UA = mean per-class recall, WA = overall accuracy; mean over folds "
    "(as the paper reports) ± spread over folds, bootstrap 95% interval. Its figures are also in `figures/` (PNG, "
    "SVG and the CSV of their numbers)."
)


# -- the sections, in the order of the page --------------------------------------------------
def _banner(run: RunResults) -> list:
    from merlib.results import corpus_note

    return [_markdown(f"**{corpus_note(run.config)}**")]


def _provenance(run: RunResults) -> list:
    from merlib.report import provenance

    return [_hidden_index(provenance(run.run_dir, run.config))]


def _notes(run: RunResults) -> list:
    from merlib.findings import findings_markdown, run_findings

    return [_markdown(findings_markdown(run_findings(run.run_dir, run.config)))]


def _data(run: RunResults) -> list:
    from merlib.layout import RunLayout
    from merlib.report import data_summary, leakage

    counts, sizes = data_summary(run.config, RunLayout(run.run_dir).folds())
    return [counts, _hidden_index(sizes), _hidden_index(leakage(run.run_dir, run.config))]


def _results(run: RunResults) -> list:
    from merlib.results import fusion_comparison, per_fold_table

    summary = run.summary
    if summary.empty:
        return [_markdown("No score set yet: no fold of this run has finished a system.")]
    each_test_set = []
    if (run.run_dir / "test_sets.csv").is_file():
        each_test_set = [_markdown("### Each test set on its own\nThe released test sets are scored together above; "
                                   "here each alone (UA, WA, macro-F1, %)."),
                         _hidden_index(_table(run.run_dir / "test_sets.csv"))]  # fmt: skip
    return [summary.set_index("system").style.format(precision=2, na_rep=""), *each_test_set,
            _markdown("### Per fold"), per_fold_table(run.run_dir, run.config),
            _markdown("### The weighted fusions side by side\nWhat each fuses, its UA/WA, and the mean weight each "
                     "input got on the hold-outs. If a three-way fusion does not beat the best two-way one, its "
                     "extra input adds nothing the others did not already carry."),
            fusion_comparison(run.run_dir, summary, run.config)]  # fmt: skip


def _training(run: RunResults) -> list:
    from merlib.report import training_curves

    return training_curves(run.run_dir, run.config, save=run.figures is not None)


def _confusions(run: RunResults) -> list:
    from merlib.plan import final_outputs
    from merlib.plots import confusion_figure
    from merlib.report import confusion_data
    from merlib.results import pooled_confusions

    classes = run.config.labels
    confusions = pooled_confusions(run.run_dir, final_outputs(run.config), classes)
    return [run.saved(confusion_figure(confusions, run.titles, classes), confusion_data(confusions, classes),
                      "confusions")]  # fmt: skip


def _fusion_weight(run: RunResults) -> list:
    from merlib.plan import two_way_weighted
    from merlib.plots import fusion_curves
    from merlib.report import fusion_curve_data
    from merlib.results import fusion_info, weight_distances

    records = fusion_info(run.run_dir)
    shown = []
    for fusion in two_way_weighted(run.config):
        by_fold = {fold: info[fusion.name] for fold, info in records.items() if "grid" in info.get(fusion.name, {})}
        figure = fusion_curves(by_fold, fusion.name, *fusion.inputs)
        shown.append(run.saved(figure, fusion_curve_data(by_fold), f"weight_{fusion.name}"))  # read once above
    distances = weight_distances(run.run_dir, run.config)
    means = distances.groupby(["fusion", "objective"])[["distance", "test_ua_cost"]].mean().round(3)
    return shown + [_markdown("### How far the chosen weight is from the test-best one\nPer fold: the w1 each "
                             "hold-out objective chose, the nearest w1 that is best on test, the distance and the "
                             "test UA points it cost. A diagnostic of the choosing rule, never a way to choose."),
                    means, _hidden_index(distances)]  # fmt: skip


def _claims(run: RunResults) -> list:
    from merlib.claims import NUMERIC_COLUMNS

    claims = run.claims  # the numeric columns are for other programs: "margin" says them for a reader
    if claims.empty:
        return [_markdown("The config declares no claim (`claims:`), or none could be checked on this run.")]
    return [_hidden_index(claims.drop(columns=[c for c in NUMERIC_COLUMNS if c in claims.columns]))]


@dataclasses.dataclass(frozen=True)
class Section:
    name: str  # what `show(run, name)` takes
    heading: str  # Markdown: the heading, with the anchor the report's notes link to
    intro: str
    content: Callable[[RunResults], list]


SECTIONS = (
    Section("banner", "", "", _banner),
    Section("provenance", "## What produced this run", "", _provenance),
    Section("notes", "## What to look at first",
            "Notes made from the run's saved histories and scores when something looks wrong (`merlib.findings`): "
            "fine-tuning that ends below its start on the hold-out, a fusion below its best input in a fold, a class "
            "a score set hardly ever recognises, a hold-out much kinder than the test. Each links to the section "
            "that shows it.", _notes),
    Section("data", "## Data",
            "Utterances per fold (IEMOCAP: session) or released split and class; the split sizes of every fold (the "
            "hold-out comes out of the training folds, or is the corpus's own development split); for each text "
            "system, how many test transcripts were seen verbatim in training (scripted "
            "dialogues repeat lines across sessions) and UA on the others.", _data),
    Section("results", '<a id="results"></a>\n\n## Results',
            "Every system and fusion of the plan: UA (mean per-class recall) and WA (overall accuracy), mean over "
            "folds as the paper reports, ± the spread over folds, and a bootstrap 95% interval of UA.", _results),
    Section("training", '<a id="training"></a>\n\n## Training',
            "Every stage in every fold: training loss and hold-out UA per epoch; for fine-tuning, epoch 0 is the "
            "linear-probed model it starts from; the dotted line marks the epoch kept, the best fine-tuned epoch on "
            "the hold-out (with `keep_start_if_best`, epoch 0 when none beat the probe). A fine-tuning curve that "
            "ends below its epoch 0 moved away from a better start: the notes at the top say where.", _training),
    Section("confusions", '<a id="confusions"></a>\n\n## Confusion matrices (pooled over folds; rows: true class, '
            "row-normalised %)", "As the paper's Figure 2: each system's final score set and every fusion.",
            _confusions),
    Section("fusion_weight", "## The fusion weight",
            "Dashed: hold-out UA; solid: test UA at the same w1, shown only to see how the choice transfers. The "
            "paper's method chooses w1 by hold-out UA; a fusion with `objective: log_loss` chooses it by the "
            "hold-out cross-entropy of the fused scores, which has no flat ties.", _fusion_weight),
    Section("claims", "## The paper's claims on this run",
            "Each claim of the config's `claims:` with what the paper reports and what this run shows: the margin "
            "(points, positive in the claim's direction, mean over folds), its range over folds, a paired bootstrap "
            "95% interval (the same resampled test utterances for both sides, within each fold) and the verdict: "
            "*holds* (interval above 0), *holds, not significant* (mean above 0 only), *does not hold*.", _claims),
)  # fmt: skip
BY_NAME = {section.name: section for section in SECTIONS}


def section_items(run: RunResults, name: str) -> list:
    """A section's heading and paragraph (Markdown) and what it shows."""
    section = BY_NAME[name]
    text = "\n\n".join(part for part in (section.heading, section.intro) if part)
    return ([_markdown(text)] if text else []) + list(section.content(run))


def show(run: RunResults, name: str) -> None:
    """Display one section in a notebook (figures closed once shown: inline plotting would show
    them again at the end of the cell)."""
    import matplotlib.pyplot as plt
    from IPython.display import display
    from matplotlib.figure import Figure

    for item in section_items(run, name):
        with pd.option_context("display.max_colwidth", None):  # titles whole, not cut with "…"
            display(item)
        if isinstance(item, Figure):
            plt.close(item)


# -- the page ---------------------------------------------------------------------------------
def _output(item) -> dict:
    """The notebook output a kernel would make of `item`: a figure as PNG, anything else through
    IPython's display formatter (HTML for tables)."""
    import matplotlib.pyplot as plt
    import nbformat
    from IPython.core.formatters import DisplayFormatter
    from matplotlib.figure import Figure

    if isinstance(item, Figure):
        buffer = io.BytesIO()
        item.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(item)
        data = {"image/png": base64.b64encode(buffer.getvalue()).decode(), "text/plain": "<Figure>"}
    else:
        with pd.option_context("display.max_colwidth", None):  # titles whole, not cut with "…"
            data, _ = DisplayFormatter().format(item)
    return nbformat.v4.new_output("display_data", data=data)


def report_notebook(run: RunResults):
    """The report as a notebook of Markdown cells and code cells without code, whose outputs are
    the sections' tables and figures."""
    import nbformat
    from IPython.display import Markdown as IPythonMarkdown

    cells = [nbformat.v4.new_markdown_cell(f"# {run.run_dir.name} · results of a run\n{INTRO}")]
    for section in SECTIONS:
        for item in section_items(run, section.name):
            if isinstance(item, IPythonMarkdown):
                cells.append(nbformat.v4.new_markdown_cell(item.data))
            else:
                cells.append(nbformat.v4.new_code_cell("", outputs=[_output(item)]))
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                          "display_name": "Python 3"}})  # fmt: skip


def write_report(run_dir: str | pathlib.Path, config: Config) -> pathlib.Path:
    """report.html of a run whose results are written (recipe.finish); its figures under figures/."""
    import nbconvert

    from merlib.io import write_text

    run = open_results(run_dir, config, save_figures=True)
    notebook = report_notebook(run)
    html, _ = nbconvert.HTMLExporter(
        extra_template_basedirs=[str(REPORT_TEMPLATES)],
        template_name="offline_report",  # JupyterLab's page without scripts from a CDN (opens offline)
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    ).from_notebook_node(notebook)
    return write_text(run.run_dir / "report.html", html)
