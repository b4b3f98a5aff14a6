"""merlib: speech + text emotion recognition (speaker-network transfer, BERT, late fusion, LOSO).

The command line, one sub-command per verb. Each sub-command is a thin wrapper over a library
function; errors a user can cause are printed as one clear message (no traceback) and exit
with status 2.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time


def _prepare(args) -> int:
    from merlib.data import iemocap

    started = time.perf_counter()
    report = iemocap.prepare_iemocap(args.root, corpus=args.name)
    manifest = iemocap.write_prepared(report, args.out, args.root)
    elapsed = time.perf_counter() - started
    expected_path = pathlib.Path(args.expected) if args.expected else iemocap.EXPECTED_COUNTS
    expected = iemocap.load_expected_counts(expected_path)
    print(f"{args.name}: 4-class utterances (exc merged into hap): {len(report.utterances)}")
    print(iemocap.format_count_table(report.counts(), expected))
    print("per speaker: " + ", ".join(f"{k} {v}" for k, v in report.speaker_counts().items()))
    other = ", ".join(f"{k} {v}" for k, v in sorted(report.labelled_other_classes.items()))
    print(f"dropped (other classes): {other or 'none'}")
    for name, items in (("missing wav", report.missing_wavs), ("unreadable wav", report.unreadable_wavs)):
        if items:
            print(f"skipped, {name}: {len(items)}: " + ", ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
    print(
        f"kept with empty transcript: {len(report.missing_transcripts)}; "
        f"ignored transcription lines: {report.ignored_transcription_lines}; "
        f"lines read as cp1252 (not UTF-8): {len(report.cp1252_lines)}"
        + (
            f" ({', '.join(report.cp1252_lines[:3])}{' ...' if len(report.cp1252_lines) > 3 else ''})"
            if report.cp1252_lines
            else ""
        )
    )
    print(f"wrote {manifest} in {elapsed:.1f} s")
    iemocap.check_counts(report, strict=args.strict, expected_path=expected_path)
    return 0


def _prepare_emobox(args) -> int:
    from merlib.data import emobox

    started = time.perf_counter()
    report = emobox.prepare_emobox(args.data_dir, args.corpus_name, args.root)
    manifest = emobox.write_prepared(report, args.out)
    print(f"emobox:{args.corpus_name}: {len(report.utterances)} utterances, protocol {report.protocol}")
    print(emobox.format_count_table(report))
    if report.missing_wavs:
        items = report.missing_wavs
        print(
            f"skipped, missing wav under {args.root}: {len(items)}: "
            + ", ".join(items[:5])
            + (" ..." if len(items) > 5 else "")
        )
        if not report.utterances:
            print("no wav found: --root must be the folder that holds the records' paths (downloads/<corpus>/...)")
    if report.unlisted_records:
        print(f"not in any partition file (EmoBox does not use them): {report.unlisted_records}")
    print(f"wrote {manifest} in {time.perf_counter() - started:.1f} s; in the run's config:")
    for line in report.config_lines():
        print(f"  {line}")
    return 0


def _prepare_msp_podcast(args) -> int:
    from merlib.data import msp_podcast

    started = time.perf_counter()
    report = msp_podcast.prepare_msp_podcast(args.root)
    manifest = msp_podcast.write_prepared(report, args.out, args.root)
    elapsed = time.perf_counter() - started
    print(f"msp_podcast: 8-class utterances (O and X dropped): {len(report.utterances)}")
    print(msp_podcast.format_count_table(report))
    print(f"speakers: {report.summary()['speakers']}; kept with speaker Unknown: {report.unknown_speakers()}, "
          f"gender Unknown: {report.unknown_genders()}")  # fmt: skip
    unknown = ", ".join(f"{k!r} {v}" for k, v in sorted(report.unknown_classes.items()))
    if unknown:
        print(f"dropped (EmoClass not one of {' '.join(msp_podcast.CLASSES + msp_podcast.DROPPED)}): {unknown}")
    for name, items in (
        ("skipped, missing wav", report.missing_wavs),
        ("skipped, unreadable wav", report.unreadable_wavs),
        ("kept with empty transcript (no Transcripts/<name>.txt)", report.missing_transcripts),
    ):
        if items:
            print(f"{name}: {len(items)}: " + ", ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
    print(f"wrote {manifest} in {elapsed:.1f} s")
    return 0


def _folds(args) -> int:
    from merlib.config import PAPER_CONFIG, load_config
    from merlib.corpus import check_partition, fold_options, with_run_labels
    from merlib.data.folds import fold_table, make_folds
    from merlib.data.manifest import read_manifest

    path = pathlib.Path(args.manifest)
    if path.is_dir():
        path = path / "utterances.jsonl"
    utterances = read_manifest(path)
    config = load_config(args.config or PAPER_CONFIG)
    if not args.config:  # a manifest alone: the paper's protocol options, over the manifest's own classes
        present = sorted({u.label for u in utterances}, key=lambda label: (label not in config.labels, label))
        config.data.labels = present or config.data.labels
    for option, value in (("holdout", args.holdout), ("holdout_fraction", args.holdout_fraction)):
        if value is not None:
            setattr(config.data, option, value)
    config.seed = config.seed if args.seed is None else args.seed
    utterances = check_partition(with_run_labels(utterances, config, path), config, path)
    folds = make_folds(utterances, **fold_options(config))
    labels = config.labels
    width = max(5, *map(len, labels))
    print(f"{config.data.protocol} folds of {path} (hold-out: {folds[0].holdout_strategy})")
    print(f"{'fold':>4} {'split':>8} {'n':>6} " + " ".join(f"{label:>{width}}" for label in labels) + "  speakers")
    for row in fold_table(folds, labels):
        counts = " ".join(f"{row[label]:>{width}}" for label in labels)
        print(f"{row['fold']:>4} {row['split']:>8} {row['n']:>6} {counts}  {row['speakers']}")
    return 0


def _generation_state(summary: dict) -> str:
    return "up to date (cached)" if summary["cached"] else f"generated in {summary['seconds_to_generate']} s"


def _demo_corpus(args) -> int:
    import json

    from merlib.data.demo import DemoCorpusConfig, generate_demo_corpus

    summary = generate_demo_corpus(args.out, DemoCorpusConfig(seed=args.seed), force=args.force)
    print(summary["notice"])
    print(
        f"{args.out}: {summary['utterances_four_class']} four-class utterances "
        f"({summary['utterances_all']} turns), {summary['hours']} h, {summary['megabytes']} MB; "
        f"{_generation_state(summary)}"
    )
    print("per speaker: " + json.dumps(summary["speakers"]))
    print(f"next: merlib prepare iemocap {args.out} --name demo --expected {args.out}/expected_counts.json --strict")
    return 0


def _demo_speakers(args) -> int:
    from merlib.data.demo import DemoSpeakersConfig, generate_demo_speakers

    summary = generate_demo_speakers(args.out, DemoSpeakersConfig(seed=args.seed), force=args.force)
    print(summary["notice"])
    print(
        f"{args.out}: {summary['speakers']} speakers, {summary['utterances']} utterances, "
        f"{summary['hours']} h, {summary['megabytes']} MB; manifest speakers.jsonl; {_generation_state(summary)}"
    )
    return 0


def _run(args) -> int:
    from merlib import runner
    from merlib.launch import Launch

    folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    devices = tuple(filter(None, (args.devices or "").split(",")))
    launch = Launch(launcher=args.launcher, jobs=args.jobs, devices=devices, partition=args.partition,
                    account=args.account, gpus_per_fold=args.gpus_per_fold, cpus_per_fold=args.cpus_per_fold,
                    time_minutes=args.time)  # fmt: skip
    return runner.run(args.config, folds=folds, runs=args.runs, overrides=_overrides(args), launch=launch,
                      rerun_changed=args.rerun_changed)  # fmt: skip


def _report(args) -> int:
    from merlib import runner

    print(f"report: {runner.report(args.run_dir)}")
    return 0


def _claims(args) -> int:
    import json

    from merlib import claims
    from merlib.io import write_text

    table = claims.claims_over_runs(args.runs, n_resamples=args.resamples)
    summary = claims.summarize_claims_over_runs(table)
    markdown = claims.claims_over_runs_markdown(table, summary)
    as_json = json.dumps(claims.claims_over_runs_json(table, summary), indent=2, default=str)
    print(as_json if args.json else markdown)
    if args.out:  # FILE.json gets the JSON, any other name the markdown
        write_text(args.out, as_json + "\n" if args.out.endswith(".json") else markdown)
        print(f"wrote {args.out}", file=sys.stderr)  # stdout stays the table (or the JSON) alone
    return 0


def _demo(args) -> int:
    """The main job on the embedded demo corpus: corpora, then the demo plan on all 5 folds
    (every system of configs/demo.yaml, the baselines among them), fusion, claims, report."""
    from merlib import runner
    from merlib.data.demo import SYNTHETIC_NOTICE, default_data_dir, generate_demo_corpus, generate_demo_speakers
    from merlib.launch import Launch

    _config(args)  # the config and device first: a mistake in them costs no corpus generation
    started = time.perf_counter()
    data = default_data_dir()
    print(SYNTHETIC_NOTICE)
    corpus = generate_demo_corpus(data / "demo-corpus")
    speakers = generate_demo_speakers(data / "demo-speakers")
    print(
        f"demo corpus: {corpus['utterances_four_class']} utterances, {corpus['hours']} h; speaker corpus: "
        f"{speakers['speakers']} speakers, {speakers['utterances']} utterances ({data}; "
        f"{time.perf_counter() - started:.0f} s)"
    )
    status = runner.run(args.config, runs=args.runs, overrides=_overrides(args), rerun_changed=args.rerun_changed,
                        launch=Launch(jobs=args.jobs))  # fmt: skip
    print(f"make demo: {time.perf_counter() - started:.0f} s in all")
    return status


def _overrides(args) -> dict:
    from merlib.config import config_overrides

    assignments = list(getattr(args, "set", None) or [])
    for flag in ("device", "precision"):  # --device X is --set runtime.device=X
        if getattr(args, flag, None):
            assignments.append(f"runtime.{flag}={getattr(args, flag)}")
    return config_overrides(assignments)


def _config(args):
    """The command's config, with its runtime checked: a device that is not here is an error
    before anything is computed or written."""
    from merlib.config import load_config
    from merlib.runtime import runtime_for

    config = load_config(args.config, _overrides(args))
    runtime_for(config)
    return config


def _pretrain(args) -> int:
    from merlib import pipeline

    config = _config(args)
    path = pipeline.pretrain(
        config, pipeline.writable_run_directory(config, args.runs), rerun_changed=args.rerun_changed
    )
    if _is_main_process():
        print(f"speaker backbone: {path}" if path else "no system of the plan transfers speaker pretraining "
              "(speech.pretrained.source: pretrain): nothing to do")  # fmt: skip
    return 0


def _speech(args) -> int:
    import json

    from merlib import pipeline
    from merlib.layout import RunLayout

    config = _config(args)
    system = args.system or pipeline.default_system(config, "speech")
    run_dir = pipeline.writable_run_directory(config, args.runs)
    stages = None if args.stage == "both" else (args.stage,)
    results = pipeline.speech_fold(config, args.fold, run_dir, system, stages, rerun_changed=args.rerun_changed)
    if _is_main_process():
        for summary in filter(None, results.values()):
            print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
        outputs = config.system(system).outputs()
        print("scores: " + ", ".join(str(RunLayout(run_dir).scores(args.fold, name)) for name in outputs))
    return 0


def _is_main_process() -> bool:
    """Rank 0 of a torchrun job (or the only process): the one that prints."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _text(args) -> int:
    import json

    from merlib import pipeline
    from merlib.layout import RunLayout

    config = _config(args)
    system = args.system or pipeline.default_system(config, "text")
    run_dir = pipeline.writable_run_directory(config, args.runs)
    summary = pipeline.text_fold(config, args.fold, run_dir, system, rerun_changed=args.rerun_changed)
    if _is_main_process():
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}) if summary else "already done")
        print(f"scores: {RunLayout(run_dir).scores(args.fold, system)}")
    return 0


def _fuse(args) -> int:
    from merlib.config import FusionConfig
    from merlib.fusion import fuse_frames, fusion_class
    from merlib.metrics import macro_f1, predicted_labels, unweighted_accuracy, weighted_accuracy
    from merlib.scores import class_columns, read_scores, write_scores

    frames = [read_scores(path) for path in args.scores]
    names = [pathlib.Path(path).stem for path in args.scores]
    declared = FusionConfig(name="fused", method=args.method, inputs=names, step=args.step, objective=args.objective)
    fusion, fused = fuse_frames(frames, names, fusion_class(args.method).from_config(declared))
    classes = class_columns(fused)
    print(f"{'system':>28}  {'test UA %':>9}  {'test WA %':>9}  {'macro-F1 %':>10}")
    for name, frame in list(zip(names, frames)) + [("fused", fused)]:
        test = frame[frame["split"] == "test"]
        predicted = predicted_labels(test[classes].to_numpy(), classes)
        print(
            f"{name:>28}  {100 * unweighted_accuracy(test['label'], predicted):9.2f}  "
            f"{100 * weighted_accuracy(test['label'], predicted):9.2f}  "
            f"{100 * macro_f1(test['label'], predicted):10.2f}"
        )
    if hasattr(fusion, "weights_"):
        print(
            "weights chosen on the hold-out: "
            + ", ".join(f"{n}: {w:.2f}" for n, w in zip(names, fusion.weights_))
            + (f"  (w1 = {fusion.weights_[0]:.2f})" if len(names) == 2 else "")
        )
    if args.out:
        write_scores(args.out, fused["id"], fused["split"], fused["label"], fused[classes].to_numpy(), classes)
        print(f"wrote {args.out}")
    return 0


def _predict(args) -> int:
    import json

    from merlib.plan import output_titles
    from merlib.predict import Predictor, format_prediction

    predictor = Predictor(args.run, [args.fold] if args.fold else None)
    prediction = predictor.predict(args.text, args.wav)
    print(
        json.dumps(prediction.as_dict(), allow_nan=False)  # strict JSON: a NaN fails loudly, never printed
        if args.json
        else format_prediction(prediction, output_titles(predictor.config))
    )
    return 0


def _bench(args) -> int:
    from merlib import bench

    options = {"utterances": args.utterances, "epochs": args.epochs} if args.kind == "fold" else {}
    return bench.main(args.kind, args.json, _config(args), **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="merlib", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="parse a corpus into utterances.jsonl")
    corpora = prepare.add_subparsers(dest="corpus", required=True)
    iemocap = corpora.add_parser("iemocap", help="IEMOCAP_full_release → 4-class manifest")
    iemocap.add_argument("root", help="the IEMOCAP_full_release folder (contains Session1/ ...)")
    iemocap.add_argument("--out", default="manifests/iemocap", help="output folder (default: %(default)s)")
    iemocap.add_argument(
        "--strict", action="store_true", help="counts that differ from the paper's 5531 are an error, not a warning"
    )
    iemocap.add_argument(
        "--name", default="iemocap", help="corpus name written into the manifest (the demo corpus uses 'demo')"
    )
    iemocap.add_argument(
        "--expected",
        help="expected-counts JSON to compare with "
        "(default: data_manifests/iemocap/expected_counts.json, the paper's 5531)",
    )
    iemocap.set_defaults(handler=_prepare)
    msp = corpora.add_parser("msp-podcast", help="MSP-Podcast release → 8-class manifest (released splits)")
    msp.add_argument("root", help="the release folder (contains Labels/labels_consensus.csv, Audios/, Transcripts/)")
    msp.add_argument("--out", default="manifests/msp_podcast", help="output folder (default: %(default)s)")
    msp.set_defaults(handler=_prepare_msp_podcast)

    emobox = corpora.add_parser("emobox", help="a corpus of EmoBox's data/ (its folds or official splits)")
    emobox.add_argument("data_dir", help="EmoBox's data/ folder (holds <corpus>/label_map.json, <corpus>/fold_1/ ...)")
    emobox.add_argument(
        "--corpus", dest="corpus_name", metavar="NAME", required=True, help="the corpus folder's name, e.g. iemocap"
    )
    emobox.add_argument("--root", required=True, help="the folder the corpora were downloaded into (the records' "
                        "wav paths, downloads/<corpus>/..., are relative to it)")  # fmt: skip
    emobox.add_argument("--out", required=True, help="output folder")
    emobox.set_defaults(handler=_prepare_emobox)

    folds = commands.add_parser("folds", help="print the fold and split sizes of a manifest")
    folds.add_argument("manifest", help="utterances.jsonl or the folder holding it")
    folds.add_argument("--config", help="a config whose data section gives the protocol, classes and splits "
                       "(default: the paper's leave-one-session-out over the manifest's classes)")  # fmt: skip
    folds.add_argument("--holdout", choices=("stratified", "session"), help="default: the config's data.holdout")
    folds.add_argument("--holdout-fraction", type=float, help="default: the config's data.holdout_fraction")
    folds.add_argument("--seed", type=int, help="default: the config's seed")
    folds.set_defaults(handler=_folds)

    for name, handler, what in (
        ("demo-corpus", _demo_corpus, "synthetic emotional speech, IEMOCAP layout"),
        ("demo-speakers", _demo_speakers, "synthetic speaker corpus, VoxCeleb layout"),
    ):
        sub = commands.add_parser(name, help=f"generate the {what} (espeak-ng; cached by config hash)")
        sub.add_argument("out", help="output folder")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--force", action="store_true", help="regenerate even if up to date")
        sub.set_defaults(handler=handler)

    pretrain = commands.add_parser("pretrain", help="speaker pretraining of the ResNet34 (resumable)")
    _add_config_options(pretrain)
    pretrain.set_defaults(handler=_pretrain)

    speech = commands.add_parser("speech", help="one LOSO fold of speech transfer (linear probe, fine-tune)")
    _add_config_options(speech)
    speech.add_argument("--fold", type=int, required=True)
    speech.add_argument("--system", help="which speech system of the plan (default: the first)")
    speech.add_argument("--stage", choices=("lp", "ft", "both"), default="both")
    speech.set_defaults(handler=_speech)

    text = commands.add_parser("text", help="one LOSO fold of BERT fine-tuning")
    _add_config_options(text)
    text.add_argument("--fold", type=int, required=True)
    text.add_argument("--system", help="which text system of the plan (default: the first)")
    text.set_defaults(handler=_text)

    fuse = commands.add_parser("fuse", help="fuse scores CSVs of any systems (hold-out rows fit, test rows scored)")
    fuse.add_argument(
        "--scores", nargs="+", required=True, help="scores CSVs (id,split,label, a column per class), speech first"
    )
    fuse.add_argument("--method", default="weighted",
                      help="a method of merlib.fusion.FUSIONS: weighted (the paper's; default) or znorm")  # fmt: skip
    fuse.add_argument("--step", type=_grid_step, default=0.01, help="grid step of the weight search, in (0, 1]")
    fuse.add_argument("--objective", choices=("ua", "log_loss"), default="ua",
                      help="weighted: maximise hold-out UA (the paper) or minimise hold-out cross-entropy")  # fmt: skip
    fuse.add_argument("--out", help="write the fused scores here")
    fuse.set_defaults(handler=_fuse)

    run = commands.add_parser("run", help="run the workbook notebooks for every fold (papermill), then fuse and report")
    _add_config_options(run)
    run.add_argument("--folds", help="comma-separated folds (default: data.folds of the config)")
    run.add_argument("--jobs", type=_positive_integer("the number of jobs"), default=1,
                     help="(fold, system) notebooks run at a time on this machine, each kernel on cores / jobs "
                          "threads (default: %(default)s)")  # fmt: skip
    run.add_argument("--devices", help="comma-separated devices, e.g. cuda:0,cuda:1: fold k runs on the (k mod n)-th")
    run.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                     help="local (default); slurm: one job per fold through submitit; submitit-local: the same jobs "
                          "as local processes")  # fmt: skip
    run.add_argument("--partition", help="slurm: the partition to submit to")
    run.add_argument("--account", help="slurm: the account to charge")
    run.add_argument("--gpus-per-fold", type=int, default=1, help="slurm: GPUs per fold's job (more than 1: DDP)")
    run.add_argument("--cpus-per-fold", type=int, default=8, help="slurm: CPUs per fold's job")
    run.add_argument("--time", type=int, default=240, help="slurm: time limit of a job, in minutes")
    run.set_defaults(handler=_run)

    predict = commands.add_parser("predict", help="a run's systems and fusions on your own sentence and/or recording")
    predict.add_argument("--run", required=True, help="a finished run folder, e.g. runs/demo")
    predict.add_argument("--text", help="the sentence (the text systems need it)")
    predict.add_argument("--wav", help="a recording (any rate, mono or stereo; the speech systems need it)")
    predict.add_argument("--fold", type=int, help="one fold's models (default: the mean over every fold's)")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(handler=_predict)

    report = commands.add_parser("report", help="fuse the saved scores of a run and write report.html + summary")
    report.add_argument("run_dir", help="runs/<name>")
    report.add_argument("--wait", action="store_true", help="wait while another process works on the run")
    report.set_defaults(handler=_report)

    claims = commands.add_parser("claims", help="the config's claims checked over several finished runs (seeds, "
                                 "precisions, machines): per run and summed up")  # fmt: skip
    claims.add_argument("runs", nargs="+", metavar="RUN", help="run folders (runs/<name>, with config.yaml)")
    claims.add_argument("--json", action="store_true", help="print JSON instead of the markdown tables")
    claims.add_argument("--out", help="also write the markdown tables to this file (FILE.md; FILE.json: the JSON)")
    claims.add_argument(
        "--resamples",
        type=_positive_integer("the number of bootstrap resamples"),
        default=1000,
        help="bootstrap resamples per claim and run",
    )
    claims.set_defaults(handler=_claims)

    bench = commands.add_parser("bench", help="measure costs (ratios measured in one run)")
    bench.add_argument("kind", choices=("speech", "text", "ssl", "fold"))
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--utterances", type=_positive_integer("utterances"), default=5531,
                       help="fold: utterances of the synthetic corpus (default: IEMOCAP's %(default)s)")  # fmt: skip
    bench.add_argument("--epochs", type=_positive_integer("epochs"),
                       help="fold: epochs of both stages (default: the config's; the wall at the config's "
                            "epochs is then projected from the measured ones)")  # fmt: skip
    _add_config_options(bench, runs=False)
    bench.set_defaults(handler=_bench)

    demo = commands.add_parser("demo", help="run the demo plan on the embedded demo corpus (make demo)")
    _add_config_options(demo)
    demo.add_argument("--jobs", type=_positive_integer("the number of jobs"), default=2,
                      help="(fold, system) notebooks run at a time, each kernel on cores / jobs threads (default: "
                           "%(default)s: the demo's small networks keep two cores busier as two one-thread "
                           "processes than as one two-thread one)")  # fmt: skip
    demo.set_defaults(handler=_demo)
    return parser


def _add_config_options(parser: argparse.ArgumentParser, runs: bool = True) -> None:
    parser.add_argument("--config", default="configs/demo.yaml", help="the run's config (default: %(default)s)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override a config value, e.g. --set speech.fine_tune.epochs=3 (repeatable; values are read as YAML)",
    )
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default: runtime.device of the config)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help="mixed precision (default: runtime.precision of the config)")  # fmt: skip
    if runs:
        parser.add_argument("--runs", default="runs", help="runs folder (default: %(default)s)")
        parser.add_argument("--wait", action="store_true",
                            help="when another process works on the same run folder part (fold, pretraining, "
                                 "run), wait for it instead of stopping")  # fmt: skip
        parser.add_argument("--rerun-changed", action="store_true",
                            help="redo the stages whose outputs were made by another config or input, and "
                                 "what depends on them (without it: an error that names what changed)")  # fmt: skip


def _positive_integer(what: str):
    """An argparse type: a positive integer, or an error that says what the number counts."""

    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text}: {what} must be a positive integer")
        return int(text)

    return parse


def _grid_step(text: str) -> float:
    step = float(text)
    if not 0 < step <= 1:
        raise argparse.ArgumentTypeError(f"{text}: the grid step must be in (0, 1], e.g. 0.01")
    return step


def main(argv: list[str] | None = None) -> int:
    """Every error a user can cause ends here as one message and exit status 2; `--debug` (or
    MERLIB_DEBUG=1) shows the traceback instead."""
    import os

    from merlib.errors import MerlibError

    args = build_parser().parse_args(argv)
    if getattr(args, "wait", False):  # read by merlib.runlock here and in the notebooks' kernels
        os.environ["MERLIB_LOCK_WAIT"] = "1"
    try:
        return args.handler(args)
    except (MerlibError, OSError) as error:
        if args.debug or os.environ.get("MERLIB_DEBUG"):
            raise
        if isinstance(error, OSError) and not isinstance(error, MerlibError):
            error = f"{error.filename + ': ' if error.filename else ''}{error.strerror or error}"
        print(f"merlib {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug or os.environ.get("MERLIB_DEBUG"):
            raise
        print(f"merlib {args.command}: interrupted; {_resume_hint()}", file=sys.stderr)
        return 130


def _resume_hint() -> str:
    """What an interrupted command keeps: the training loop's last checkpoint in this process."""
    loop = sys.modules.get("merlib.train.loop")
    saved = getattr(loop, "last_checkpoint", None)
    if saved is None:
        return "rerun the same command to resume (finished stages and saved epochs are kept)"
    path, epoch = saved
    return f"rerun the same command to resume after epoch {epoch + 1} (saved in {path})"


if __name__ == "__main__":
    sys.exit(main())
