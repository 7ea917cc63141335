"""DeepLIFT/SHAP and dinucleotide shuffles against tangermeme, on identical weights and references.

The model: the small CNN of tests/planted_params.json (Conv1D 32x15 + relu, max pool 4, Conv1D
32x5 + relu, global max pool, dense 16 + relu, dense 2, sigmoid), trained with train.py on the
GENERATED planted set (CTCF and Spi1 instances planted into dinucleotide-shuffled 200-bp windows
of data/'s chr20, basenji_tk.interpret.planted). Its weights are copied into the equivalent
torch.nn.Sequential: Keras is (B, L, 4) channels-last, torch (B, 4, L); a Conv1D kernel
(k, in, out) becomes (out, in, k), a Dense kernel (in, out) becomes (out, in); Keras' 'same'
padding of an odd kernel k is torch's padding (k - 1) / 2; the global max pool is MaxPool1d over
all 50 positions (tangermeme has a DeepLIFT rule for MaxPool1d, not for an adaptive pool), so no
flatten reorders positions. The two forward passes must agree to 1e-5 on the logits.

Compared, per task (the logit of "carries CTCF", "carries Spi1"):
  our interpret.attribution.Attributor('deepshap') against tangermeme's deep_lift_shap, both fed
  the SAME 20 dinucleotide shuffles per sequence (ours, passed to tangermeme as its `references`
  tensor), on held-out sequences; Pearson r per sequence of the observed-base attributions
  (goal >= 0.99) and of the hypothetical contributions, and the completeness gap of each.
Shuffles: ours (basenji_tk.interpret.shuffle.dinuc_shuffle, uniform over all sequences with the
  same dinucleotide counts) against tangermeme's ersatz.dinucleotide_shuffle, 1,000 shuffles of
  each of a few sequences: exact dinucleotide counts, per-position base composition, positions
  changed per shuffle, distinct shuffles; and, for one 10-bp sequence whose whole class of
  same-count sequences is enumerated, how uniformly each covers it (chi-square).

Needs torch 2.13.0 and tangermeme, which live only in .venv-bench (benchmarks/setup_env.sh).
Everything else is bundled (data/), so nothing is skipped for want of ../shared.
"""

import argparse
import itertools
import os
import sys
import time

import numpy as np

import common

GOAL = 0.99
LABEL = "GENERATED (planted motifs in shuffled real chr20 sequence)"
FASTA = os.path.join(common.REPO_ROOT, "data", "hg19_chr20_20Mb.fa.gz")
PARAMS = os.path.join(common.REPO_ROOT, "tests", "planted_params.json")


def build_model(work: str, n: int) -> tuple:
    """The planted set and a model trained on it (reused when ``work`` already holds both)."""
    from basenji_tk.interpret.planted import planted_set, write_planted
    from basenji_tk.io.meme import jaspar_motifs

    motifs = sorted(jaspar_motifs(names=["MA0139.2", "MA0080.7"]), key=lambda m: m.name)
    planted = planted_set(FASTA, motifs, n=n, length=200, seed=0)
    model_dir = os.path.join(work, "model")
    if not os.path.exists(os.path.join(model_dir, "model_best.keras")):
        from basenji_tk.data import table_tasks, tables
        from basenji_tk.model.train import Options, train

        paths = write_planted(planted, os.path.join(work, "set"))
        tasks = tuple(t for name in planted.motifs for t in table_tasks.parse_task(name, "activity", "--activity"))
        tables.build_table_dataset(paths["table"], os.path.join(work, "data"), tables.TableOptions(
            tasks=tasks, coords=("chrom", "start", "end"), split_column="split", description=LABEL, force=True),
            fasta=paths["fasta"])
        train(PARAMS, [os.path.join(work, "data")], model_dir, Options(seed=0, quiet=True))
    return planted, model_dir


def torch_copy(keras_model):
    """The torch.nn.Sequential twin of the planted CNN, with the Keras weights; outputs logits."""
    import torch

    conv = [layer for layer in keras_model.layers if type(layer).__name__ == "Conv1D"]
    dense = [layer for layer in keras_model.layers if type(layer).__name__ == "Dense"]
    pool = next(layer for layer in keras_model.layers if type(layer).__name__ == "MaxPooling1D")
    width = int(keras_model.input_shape[1] // pool.pool_size[0])
    tconv = [torch.nn.Conv1d(c.kernel.shape[1], c.kernel.shape[2], c.kernel.shape[0],
                             padding=(c.kernel.shape[0] - 1) // 2) for c in conv]
    tdense = [torch.nn.Linear(d.kernel.shape[0], d.kernel.shape[1]) for d in dense]
    with torch.no_grad():
        for k, t in zip(conv, tconv):
            t.weight.copy_(torch.from_numpy(np.transpose(np.asarray(k.kernel), (2, 1, 0)).copy()))
            t.bias.copy_(torch.from_numpy(np.asarray(k.bias)))
        for k, t in zip(dense, tdense):
            t.weight.copy_(torch.from_numpy(np.asarray(k.kernel).T.copy()))
            t.bias.copy_(torch.from_numpy(np.asarray(k.bias)))
    net = torch.nn.Sequential(tconv[0], torch.nn.ReLU(), torch.nn.MaxPool1d(pool.pool_size[0]), tconv[1],
                              torch.nn.ReLU(), torch.nn.MaxPool1d(width), torch.nn.Flatten(), tdense[0],
                              torch.nn.ReLU(), tdense[1])
    return net.eval()


def pearson_rows(a, b):
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def compare_deepshap(planted, model_dir, n_seq: int, n_refs: int):
    import torch
    from tangermeme.deep_lift_shap import deep_lift_shap

    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.attribution import Attributor, choose

    tm = TrainedModel.load(model_dir)
    net = torch_copy(tm.model)
    test = np.flatnonzero((planted.split == "test") & planted.labels.any(axis=1))[:n_seq]
    x = planted.one_hot[test].astype(np.float32)
    logits_k = choose(tm, None, None, True).model.predict(x, verbose=0)
    logits_k = np.asarray(logits_k["activity"] if isinstance(logits_k, dict) else logits_k)
    with torch.no_grad():
        logits_t = net(torch.from_numpy(x.transpose(0, 2, 1).copy())).numpy()
    forward = float(np.abs(logits_k - logits_t).max())
    rows, times = [], {}
    for k, task in enumerate(planted.motifs):
        attributor = Attributor(tm, choose(tm, None, task, True), "deepshap", n_references=n_refs, seed=k)
        refs = attributor.references(x)  # (N, n, L, 4), our dinucleotide shuffles
        X = torch.from_numpy(x.transpose(0, 2, 1).copy())
        R = torch.from_numpy(refs.transpose(0, 1, 3, 2).copy())
        with attributor:  # warm up both (tracing, hooks) so the times below are of the work
            attributor({tm.sequence.name: x[:2]}, [None] * 2, references=refs[:2])
        deep_lift_shap(net, X[:2], target=k, references=R[:2], batch_size=64, only_warn=True)
        t0 = time.perf_counter()
        with attributor:
            ours = attributor({tm.sequence.name: x}, [None] * len(x), references=refs)
        times[("ours", task)] = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = deep_lift_shap(net, X, target=k, references=R, batch_size=64, hypothetical=True,
                                warning_threshold=1e-3, only_warn=True).numpy().transpose(0, 2, 1)
        times[("tangermeme", task)] = time.perf_counter() - t0
        observed = theirs * x
        r_obs = pearson_rows(ours.attributions, observed)
        r_hyp = pearson_rows(ours.hypothetical, theirs)
        with torch.no_grad():
            f_x = net(X)[:, k].numpy()
            f_r = net(R.reshape(-1, *R.shape[2:]))[:, k].numpy().reshape(len(x), -1).mean(1)
        gap_t = np.abs(observed.reshape(len(x), -1).sum(1) - (f_x - f_r)).max()
        rows.append((task, r_obs, r_hyp, float(np.nanmax(ours.gap)), float(gap_t),
                     float(np.abs(ours.attributions - observed).max()), float(np.abs(ours.attributions).max())))
    return forward, rows, times, len(x), n_refs


def shuffle_stats(seqs, n: int):
    """Per sequence: statistics of ``n`` shuffles by each implementation."""
    import torch
    from tangermeme.ersatz import dinucleotide_shuffle

    from basenji_tk.interpret.shuffle import dinuc_counts, dinuc_shuffle

    out = []
    for name, x in seqs:
        ours = dinuc_shuffle(x, n, np.random.default_rng(0))
        t = dinucleotide_shuffle(torch.from_numpy(x.T[None].astype(np.float32)), n=n, random_state=0)
        theirs = t.numpy()[0].transpose(0, 2, 1).astype(np.uint8)
        counts = dinuc_counts(x)
        row = {"sequence": name, "bp": len(x)}
        for who, s in (("ours", ours), ("tangermeme", theirs)):
            row[f"{who} exact"] = all((dinuc_counts(y) == counts).all() for y in s)
            changed = (s != x[None]).any(axis=2).sum(axis=1)
            row[f"{who} changed"] = changed
            row[f"{who} composition"] = s.mean(axis=0)
            row[f"{who} distinct"] = len({y.argmax(1).tobytes() for y in s})
        out.append(row)
    return out


_EVERY = {}


def enumerate_class(codes: np.ndarray) -> np.ndarray:
    """All sequences (as codes) with the dinucleotide counts and first base of ``codes`` (short only)."""
    L = len(codes)
    if L not in _EVERY:
        every = np.array(list(itertools.product(range(4), repeat=L)), dtype=np.int8)
        pairs = every[:, :-1].astype(np.int64) * 4 + every[:, 1:]
        _EVERY[L] = every, np.stack([(pairs == d).sum(1) for d in range(16)], axis=1).astype(np.int8)
    every, counts = _EVERY[L]
    target = np.zeros(16, dtype=np.int64)
    np.add.at(target, codes[:-1] * 4 + codes[1:], 1)
    return every[(counts == target).all(1) & (every[:, 0] == codes[0])].astype(np.int64)


def uniformity(codes: np.ndarray, n: int):
    """Chi-square of ``n`` shuffles of a short sequence over its whole same-count class."""
    import torch
    from scipy import stats as st
    from tangermeme.ersatz import dinucleotide_shuffle

    from basenji_tk.interpret.shuffle import dinuc_shuffle

    klass = enumerate_class(codes)
    index = {row.tobytes(): i for i, row in enumerate(klass.astype(np.uint8))}
    x = np.eye(4, dtype=np.uint8)[codes]
    res = {"class size": len(klass)}
    for who, s in (("ours", dinuc_shuffle(x, n, np.random.default_rng(1)).argmax(2)),
                   ("tangermeme", dinucleotide_shuffle(torch.from_numpy(x.T[None].astype(np.float32)), n=n,
                                                       random_state=1).numpy()[0].argmax(1))):
        hits = np.bincount([index[r.astype(np.uint8).tobytes()] for r in s], minlength=len(klass))
        chi = st.chisquare(hits)
        res[who] = (int((hits > 0).sum()), float(chi.statistic), float(chi.pvalue))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=200, help="held-out planted sequences attributed (default 200)")
    ap.add_argument("--references", type=int, default=20, help="dinucleotide shuffles per sequence (default 20)")
    ap.add_argument("--shuffles", type=int, default=1000, help="shuffles per sequence for the statistics")
    ap.add_argument("--n", type=int, default=6000, help="planted sequences generated (default 6000)")
    ap.add_argument("--work", default=os.path.join(common.OUT_DIR, "deepshap_tangermeme"),
                    help="folder for the planted set and model (reused when present)")
    args = ap.parse_args(argv)
    try:
        import tangermeme  # noqa: F401
        import torch
    except ImportError as err:
        common.skip(f"{err.name} is not installed here; run with .venv-bench/bin/python "
                    "(build it with benchmarks/setup_env.sh)")
    from importlib.metadata import version

    t0 = time.perf_counter()
    planted, model_dir = build_model(args.work, args.n)
    t_model = time.perf_counter() - t0
    forward, rows, times, n_seq, n_refs = compare_deepshap(planted, model_dir, args.sequences, args.references)
    print(f"{LABEL}: DeepLIFT/SHAP of the planted CNN, ours (Keras/TF) against tangermeme (torch), same weights")
    print(f"machine: {common.machine()}; torch {torch.__version__}, tangermeme {version('tangermeme')}; "
          f"set + model {t_model:.0f} s")
    print(f"forward logits, Keras vs torch: max |difference| {forward:.2g} (must be < 1e-5)\n")
    table = []
    for task, r_obs, r_hyp, gap_o, gap_t, diff, scale in rows:
        table.append([task, n_seq, n_refs, f"{np.min(r_obs):.5f}", f"{np.median(r_obs):.5f}",
                      f"{np.min(r_hyp):.5f}", f"{np.median(r_hyp):.5f}", f"{diff:.2g} / {scale:.2g}",
                      f"{gap_o:.1g}", f"{gap_t:.1g}", f"{times[('ours', task)]:.2f}",
                      f"{times[('tangermeme', task)]:.2f}"])
    common.table(["task (logit)", "seqs", "refs", "r min", "r median", "hyp r min", "hyp r median",
                  "max |diff| / max |attr|", "gap ours", "gap theirs", "ours s", "tangermeme s"], table)
    met = forward < 1e-5 and all(np.min(r[1]) >= GOAL for r in rows)

    print(f"\n{LABEL}: dinucleotide shuffles, {args.shuffles} per sequence (seed 0)")
    seqs = [(f"planted{i:05d}", planted.one_hot[i]) for i in np.flatnonzero(planted.split == "test")[:3]]
    seqs.append(("planted00000[:40]", planted.one_hot[0][:40]))
    stats_rows = shuffle_stats(seqs, args.shuffles)
    from scipy import stats as st

    srows = []
    for r in stats_rows:
        ks = st.ks_2samp(r["ours changed"], r["tangermeme changed"])
        comp = np.abs(r["ours composition"] - r["tangermeme composition"])
        srows.append([r["sequence"], r["bp"], f"{r['ours exact']}/{r['tangermeme exact']}",
                      f"{r['ours changed'].mean():.1f} +- {r['ours changed'].std():.1f}",
                      f"{r['tangermeme changed'].mean():.1f} +- {r['tangermeme changed'].std():.1f}",
                      f"{ks.pvalue:.2g}",
                      f"{comp.mean():.3f} / {comp.max():.3f} @{comp.max(1).argmax()} / {comp[:-2].max():.3f}",
                      f"{r['ours distinct']}/{r['tangermeme distinct']}"])
    common.table(["sequence", "bp", "exact counts ours/theirs", "changed ours", "changed tangermeme",
                  "KS p (changed)", "composition |diff| mean / max @pos / max without last 2",
                  "distinct ours/theirs"], srows)
    # the 10-bp prefix of a test sequence with the largest same-count class
    codes = max((planted.one_hot[i][:10].argmax(1) for i in np.flatnonzero(planted.split == "test")[:30]),
                key=lambda c: len(enumerate_class(c)))
    u = uniformity(codes, 20 * 1000)
    print(f"\n10-bp sequence {''.join('ACGT'[c] for c in codes)}: {u['class size']} sequences share its dinucleotide "
          f"counts (and first base); 20,000 shuffles each:")
    common.table(["shuffle", "sequences reached", "chi-square vs uniform", "p"],
                 [[who, f"{u[who][0]} of {u['class size']}", f"{u[who][1]:.1f}", f"{u[who][2]:.2g}"]
                  for who in ("ours", "tangermeme")])
    print(f"\nPearson r per sequence >= {GOAL} on every sequence and forward agreement: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
