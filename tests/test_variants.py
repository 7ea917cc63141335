"""sed.py: VCF and gene reading, SED statistics against a brute-force computation, restart, bad input.

Variants are the real 1000 Genomes records of data/variants_1kg.vcf.gz; the few records written
here by hand (a flipped allele, a duplicate, a REF mismatch, an indel, other chromosomes) are
CONSTRUCTED test cases around real positions, labelled as such.
"""

import gzip
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from conftest import BIN_DIR, DATA, FASTA, assert_clean_failure, read_only, run_script

from basenji_tk import files
from basenji_tk.analysis import effects, sedwriter, variants
from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.io.genes import read_genes
from basenji_tk.io.genome import Genome
from basenji_tk.io.vcf import read_vcf

VCF = DATA / "variants_1kg.vcf.gz"
TSS = DATA / "tss.bed"


def real_records(n, start=0):
    """The first ``n`` data lines of the demo VCF after ``start`` and its header."""
    with gzip.open(VCF, "rt") as fh:
        lines = fh.read().splitlines()
    header = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    return header, body[start:start + n]


def dense_region(n_genes=3):
    """Records and TSS lines of the part of the VCF's span where ``n_genes`` TSSs lie closest."""
    header, body = real_records(30_000)
    pos = np.array([int(x.split("\t")[1]) for x in body])
    lines = [x for x in open(TSS) if pos[0] + 9000 < int(x.split("\t")[1]) < pos[-1] - 9000]
    tss = np.array([int(x.split("\t")[1]) for x in lines])
    i = int(np.argmin(tss[n_genes - 1:] - tss[:len(tss) - n_genes + 1]))
    lo, hi = tss[i] - 8000, tss[i + n_genes - 1] + 8000
    return header, [x for x, p in zip(body, pos) if lo <= p < hi], lines[i:i + n_genes]


def write_vcf(path, header, body):
    path.write_text("\n".join(header + body) + "\n")
    return path


def record(chrom, pos, ref, alt, vid="."):
    return f"{chrom}\t{pos}\t{vid}\t{ref}\t{alt}\t100\tPASS\t."


def test_read_vcf_flips_splits_dedups_and_counts(tmp_path):
    genome = Genome(FASTA)
    header, body = real_records(30)
    first = body[0].split("\t")
    chrom, pos = first[0], int(first[1])
    base = genome.fetch(chrom, pos + 99, pos + 100)
    other = next(b for b in "ACGT" if b != base)
    third = next(b for b in "ACGT" if b not in (base, other))
    # CONSTRUCTED records at real positions
    extra = [record(chrom, pos + 100, other, base, "flip_me"),  # REF/ALT swapped: flipped
             record(chrom, pos + 100, other, third, "bad_ref"),  # neither allele is the genome's
             record(chrom, pos + 100, base, f"{other},{third}", "multi"),  # two alleles
             body[3],  # a duplicate of a real record
             record(chrom, pos + 200, genome.fetch(chrom, pos + 199, pos + 202), genome.fetch(chrom, pos + 199, pos + 200),
                    "del2"),  # a 2-bp deletion
             record("chrZ", 10, "A", "C", "elsewhere")]
    v = read_vcf(write_vcf(tmp_path / "v.vcf", header, body + extra), genome)
    c = v.counts
    assert c["records"] == 36 and c["flipped"] == 1 and c["ref_mismatch_skipped"] == 1
    assert c["duplicates"] == 1 and c["chrom_not_in_fasta"] == 1
    assert c["scorable"] == len(v) == 30 + 1 + 2 + 1
    i = v.ids.index("flip_me")
    assert v.flipped[i] and (v.ref[i], v.alt[i]) == (base, other)
    assert sorted(v.alt[k] for k, x in enumerate(v.ids) if x == "multi") == sorted([other, third])
    assert list(v.pos) == sorted(v.pos)  # sorted, whatever the file order
    # the real records: no REF mismatch anywhere in the demo VCF
    real = read_vcf(VCF, genome)
    assert real.counts["ref_mismatch_skipped"] == 0 and real.counts["flipped"] == 0
    assert real.counts["scorable"] > 24_000


def test_read_genes_bed_and_gtf(tmp_path):
    genome = Genome(FASTA)
    genes, counts = read_genes(TSS, genome)
    names = [g.name for g in genes]
    assert len(genes) > 300 and len(set(g.name for g in genes if not g.locus)) == sum(not g.locus for g in genes)
    # Y_RNA names six small genes 0.4-18 Mb apart in the real tss.bed: six genes, not one spanning 18 Mb
    y_rna = [g for g in genes if g.name == "Y_RNA"]
    y_tss = sorted(int(x.split("\t")[1]) for x in open(TSS) if x.split("\t")[3] == "Y_RNA")
    assert [g.locus for g in y_rna] == [1, 2, 3, 4, 5, 6] and [int(g.tss[0]) for g in y_rna] == y_tss
    assert counts["names_at_several_loci"] == 2  # Y_RNA, and U3 at 3.4 and 17.0 Mb
    jag1 = [g for g in genes if g.name == "JAG1"]  # two TSSs 28 kb apart: one gene
    assert len(jag1) == 1 and list(jag1[0].tss) == [10627013, 10654693] and jag1[0].locus == 0
    first = open(TSS).readline().split("\t")
    g = genes[names.index(first[3])]
    assert int(first[1]) in g.tss and g.strand == first[4]
    gtf = tmp_path / "g.gtf"
    gtf.write_text('20\tx\ttranscript\t1001\t2000\t.\t+\t.\tgene_id "G1"; gene_name "ONE";\n'
                   '20\tx\ttranscript\t1501\t3000\t.\t-\t.\tgene_id "G2"; gene_name "TWO";\n'
                   '20\tx\ttranscript\t1201\t2000\t.\t+\t.\tgene_id "G1"; gene_name "ONE";\n'
                   '20\tx\texon\t1001\t1100\t.\t+\t.\tgene_id "G1"; gene_name "ONE";\n')
    genes, _ = read_genes(gtf, genome)
    assert [(g.name, list(g.tss)) for g in genes] == [("ONE", [1000, 1200]), ("TWO", [2999])]


def brute_force(model, genome, chrom, start, length, pos0, ref, alt, tss_bins, rc):
    """SED statistics from separate reference and alternative forward passes."""
    seq = genome.fetch(chrom, start, start + length + 40)
    o = pos0 - start
    assert seq[o:o + len(ref)] == ref
    alt_seq = (seq[:o] + alt + seq[o + len(ref):])[:length]
    x = np.stack([dna.one_hot(seq[:length], dtype=np.float32), dna.one_hot(alt_seq, dtype=np.float32)])
    pred = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    if rc:
        back = np.asarray(model.predict_on_batch(x[:, ::-1, ::-1].copy()), dtype=np.float64)[:, ::-1, :]
        pred = (pred + back) / 2
    r, a = pred
    rt, at = r[tss_bins].sum(0), a[tss_bins].sum(0)
    return np.stack([at - rt, np.log2(at + 1) - np.log2(rt + 1), (a - r).sum(0),
                     np.abs(np.log2(a + 1) - np.log2(r + 1)).max(0)])


@pytest.mark.parametrize("rc", [False, True])
def test_statistics_match_brute_force(tmp_path, tiny_model, rc):
    from basenji_tk.model.models import load_model

    genome = Genome(FASTA)
    header, body, tss_lines = dense_region(3)
    first = body[0].split("\t")
    chrom, pos = first[0], int(first[1])
    base = genome.fetch(chrom, pos + 49, pos + 50)
    other = next(b for b in "ACGT" if b != base)
    extra = [record(chrom, pos + 50, other, base, "flip_me"),  # CONSTRUCTED: flipped
             record(chrom, pos + 80, genome.fetch(chrom, pos + 79, pos + 83), genome.fetch(chrom, pos + 79, pos + 80),
                    "del3")]  # CONSTRUCTED: a 3-bp deletion
    vcf = write_vcf(tmp_path / "v.vcf", header, body + extra)
    genes = tmp_path / "genes.bed"
    genes.write_text("".join(tss_lines))
    out = tmp_path / "out"
    counts = variants.score_variants(tiny_model, vcf, genes, out, fasta=FASTA, rc=rc, float32=True, batch_size=5)
    assert counts["pairs"] > 50 and counts["vcf_flipped"] == 1
    model = load_model(tiny_model / "model_best.keras")
    with h5py.File(out / "sed.h5") as h5:
        seq_length = int(h5.attrs["seq_length"])
        names = [x.decode() for x in h5["gene"][:]]
        ids = [x.decode() for x in h5["snp"][:]]
        rows = sorted({ids.index("flip_me"), ids.index("del3"), *range(0, len(ids), max(1, len(ids) // 6))})
        gene_list, _ = read_genes(genes, genome)
        by_name = {g.name: g for g in gene_list}
        for i in rows:
            g = by_name[names[i]]
            start = int(g.tss[0] + g.tss[-1]) // 2 - seq_length // 2
            bins = (g.tss - start) // 128
            ref, alt = h5["ref"][i].decode(), h5["alt"][i].decode()
            want = brute_force(model, genome, chrom, start, seq_length, int(h5["pos"][i]) - 1, ref, alt,
                               bins[(bins >= 0) & (bins < 128)], rc)
            got = np.stack([h5[name][i] for name in variants.STATS]).astype(np.float64)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{ids[i]} {names[i]}")
        i = ids.index("flip_me")
        assert h5["flipped"][i] and h5["ref"][i].decode() == base
        assert int(h5["tss_dist"][i]) == pos + 49 - int(by_name[names[i]].tss[np.abs(by_name[names[i]].tss - pos - 49).argmin()])
        n_targets = len(h5["target_ids"])
    lines = open(out / "sed.tsv").read().splitlines()
    assert n_targets == 3 and len(lines) == 1 + counts["pairs"] * n_targets


def test_restart_skips_finished_genes_and_gives_the_same_files(tmp_path, tiny_model, monkeypatch):
    header, body, tss_lines = dense_region(6)
    vcf = write_vcf(tmp_path / "v.vcf", header, body)
    genes = tmp_path / "genes.bed"
    genes.write_text("".join(tss_lines))
    full = variants.score_variants(tiny_model, vcf, genes, tmp_path / "full", fasta=FASTA, targets="ctcf,2")
    add = sedwriter.SedWriter.add
    calls = []

    def crash_after_three(self, key, meta, stats):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(key)
        add(self, key, meta, stats)

    monkeypatch.setattr(sedwriter.SedWriter, "add", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        variants.score_variants(tiny_model, vcf, genes, tmp_path / "cut", fasta=FASTA, targets="ctcf,2")
    assert (tmp_path / "cut" / "sed.h5.partial").exists() and not (tmp_path / "cut" / "sed.h5").exists()
    monkeypatch.setattr(sedwriter.SedWriter, "add", add)
    # an interrupted run is not replaced without --restart or --force
    with pytest.raises(InputError, match="interrupted run.*--restart.*--force"):
        variants.score_variants(tiny_model, vcf, genes, tmp_path / "cut", fasta=FASTA, targets="ctcf,2")
    shutil.copytree(tmp_path / "cut", tmp_path / "cut2")  # a second interrupted run, for a changed VCF below
    scored = []
    monkeypatch.setattr(effects, "sed_stats", lambda *a, f=effects.sed_stats: scored.append(1) or f(*a))
    again = variants.score_variants(tiny_model, vcf, genes, tmp_path / "cut", fasta=FASTA, targets="ctcf,2",
                                    restart=True)
    assert again["pairs"] == full["pairs"] and 0 < len(scored) < full["pairs"]
    with h5py.File(tmp_path / "full" / "sed.h5") as a, h5py.File(tmp_path / "cut" / "sed.h5") as b:
        for name in ("snp", "gene", "pos", "SED", "maxlog2", "target_ids"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        assert [x.decode() for x in b["target_ids"][:]] == ["ctcf", "tss"]
    assert (tmp_path / "full" / "sed.tsv").read_text() == (tmp_path / "cut" / "sed.tsv").read_text()
    # a restart with other settings is refused
    with pytest.raises(InputError, match="different targets"):
        (tmp_path / "cut" / "sed.h5").rename(tmp_path / "cut" / "sed.h5.partial")
        (tmp_path / "cut" / "sed.tsv").rename(tmp_path / "cut" / "sed.tsv.partial")
        variants.score_variants(tiny_model, vcf, genes, tmp_path / "cut", fasta=FASTA, targets="ctcf", restart=True)
    # the VCF changed in place between the kill and the restart: refused, naming it
    write_vcf(vcf, header, body[:-1] + [body[-1].replace("\tPASS\t", "\t.\t")])
    proc = run_script("sed.py", tiny_model, vcf, genes, "-f", FASTA, "-o", tmp_path / "cut2", "--targets", "ctcf,2",
                      "--restart")
    assert_clean_failure(proc, str(vcf), "VCF changed since the interrupted run", "--restart")
    assert (tmp_path / "cut2" / "sed.h5.partial").exists() and not (tmp_path / "cut2" / "sed.h5").exists()


def test_script_bad_input(tmp_path, tiny_model):
    header, body = real_records(20)
    good = write_vcf(tmp_path / "good.vcf", header, body)
    out = tmp_path / "out"
    other = write_vcf(tmp_path / "other.vcf", [h.replace("contig=<ID=20", "contig=<ID=chrZ") for h in header],
                      [record("chrZ", 100, "A", "C")])
    assert_clean_failure(run_script("sed.py", tiny_model, other, TSS, "-f", FASTA, "-o", out),
                         "other.vcf", "no VCF chromosome is in the FASTA", "chrZ")
    broken = write_vcf(tmp_path / "broken.vcf", header, body[:5] + ["20\tnot_a_number\t.\tA\tC\t.\t.\t."])
    line = len(header) + 6
    assert_clean_failure(run_script("sed.py", tiny_model, broken, TSS, "-f", FASTA, "-o", out),
                         "broken.vcf", f"line {line}")
    far = tmp_path / "far.bed"
    far.write_text("chrQ\t100\t101\tX\t0\t+\n")
    assert_clean_failure(run_script("sed.py", tiny_model, good, far, "-f", FASTA, "-o", out), "far.bed", "no gene TSS")
    assert_clean_failure(run_script("sed.py", tiny_model, good, TSS, "-f", FASTA, "-o", out, "--targets", "nope"),
                         "--targets", "nope", "ctcf")
    assert not out.exists() or not any(out.iterdir())
    # unsorted input works, and a gene at the chromosome start gets an N-padded window
    near_start = tmp_path / "start.bed"
    first = int(body[0].split("\t")[1])
    near_start.write_text(f"20\t100\t101\tSTART\t0\t+\n20\t{first + 500}\t{first + 501}\tNEAR\t0\t-\n")
    shuffled = write_vcf(tmp_path / "shuffled.vcf", header, body[::-1])
    proc = run_script("sed.py", tiny_model, shuffled, near_start, "-f", FASTA, "-o", out, "-q", check=True)
    with h5py.File(out / "sed.h5") as h5:
        assert h5.attrs["count_windows_padded_with_n"] == 1 and len(h5["snp"]) > 0
        assert list(h5["pos"][:]) == sorted(h5["pos"][:])
    assert proc.returncode == 0


# ----------------------------------------------------------------------------- VCF and gene files from other sources
def compress(path, how):
    """``path`` as written (plain), gzip-compressed (plain gzip) or bgzip-compressed; returns the file."""
    import pysam

    if how == "plain":
        return path
    out = path.with_name(path.name + ".gz")
    if how == "gzip":
        with open(path, "rb") as src, gzip.open(out, "wb") as dst:
            dst.write(src.read())
    else:
        pysam.tabix_compress(str(path), str(out), force=True)
    return out


@pytest.mark.parametrize("how", ["plain", "gzip", "bgzip"])
def test_vcf_compressions_and_windows_line_endings_read_the_same(tmp_path, how):
    genome = Genome(FASTA)
    header, body = real_records(300)
    want = read_vcf(write_vcf(tmp_path / "v.vcf", header, body), genome)
    assert len(want) == 300
    crlf = tmp_path / "crlf.vcf"
    crlf.write_bytes(("\r\n".join(header + body) + "\r\n").encode())
    for path in (compress(tmp_path / "v.vcf", how), compress(crlf, how)):
        got = read_vcf(path, genome)
        assert got.ids == want.ids and got.alt == want.alt and list(got.pos) == list(want.pos)
        assert dict(got.counts) == dict(want.counts)


@pytest.mark.parametrize("how", ["plain", "gzip", "bgzip"])
def test_vcf_errors_name_the_line_an_editor_shows(tmp_path, how):
    genome = Genome(FASTA)
    header, body = real_records(20)
    cases = {  # CONSTRUCTED bad lines after 5 real records: line len(header) + 6 of the file
        "short": ("\t".join(body[5].split("\t")[:5]), "5 tab-separated columns where 8 or more are expected"),
        "pos": ("20\tnot_a_number\t.\tA\tC\t.\t.\t.", "POS 'not_a_number' is not a whole number"),
        "empty": ("", "empty line"),
    }
    for name, (bad, words) in cases.items():
        path = compress(write_vcf(tmp_path / f"{name}.vcf", header, body[:5] + [bad] + body[6:]), how)
        with pytest.raises(InputError) as err:
            read_vcf(path, genome)
        msg = str(err.value)
        assert msg.startswith(f"{path}: line {len(header) + 6}: ") and words in msg, msg
        assert "truncated" not in msg
    # a file really cut short: named as such
    whole = compress(write_vcf(tmp_path / "whole.vcf", *real_records(3000)), how)
    cut = tmp_path / f"cut-{whole.name}"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match="truncated|cut short"):
        read_vcf(cut, genome)


def test_variant_past_the_chromosome_end_is_counted_apart(tmp_path):
    genome = Genome(FASTA)
    size = genome.sizes["20"]
    header, body = real_records(10)
    extra = [record("20", size + 500, "A", "G", "past"),  # CONSTRUCTED: past the 20 Mb FASTA's end
             record("20", size, "AC", "A", "straddles")]  # CONSTRUCTED: REF reaches past the end
    v = read_vcf(write_vcf(tmp_path / "v.vcf", header, body + extra), genome)
    assert v.counts["past_chrom_end_skipped"] == 2 and v.counts["ref_mismatch_skipped"] == 0
    assert len(v) == 10


def test_vcf_from_another_caller_whole_chromosome_csi_index():
    """CEUtrio (GATK calls on all of chromosome 20, unphased): records past the demo FASTA's
    20 Mb are skipped as such, not as REF mismatches."""
    from conftest import shared

    path = shared("grch37_chr20", "CEUtrio_20.vcf.bgz")
    with gzip.open(path, "rt") as fh:
        pos = [int(x.split("\t")[1]) for x in fh if not x.startswith("#")]
    v = read_vcf(path, Genome(FASTA))
    assert v.counts["past_chrom_end_skipped"] == sum(p > 20_000_000 for p in pos) > 0
    assert v.counts["ref_mismatch_skipped"] == 0
    u = read_vcf(shared("grch37_chr20", "unphased.vcf.gz"), Genome(FASTA))  # csi-indexed, unphased
    assert u.counts["records"] == 24_990 and u.counts["ref_mismatch_skipped"] == 0


def test_gene_bed_with_a_header_line_and_windows_line_endings(tmp_path):
    genome = Genome(FASTA)
    lines = open(TSS).read().splitlines()[:40]
    want, _ = read_genes(TSS, genome)
    names = {x.split("\t")[3] for x in lines} - {"Y_RNA"}  # the 40 lines hold one of its six loci
    want = [(g.name, list(g.tss), g.strand, g.locus) for g in want if g.name in names]
    bed = tmp_path / "genes.bed"
    bed.write_bytes(("chrom\tstart\tend\tname\tstrand\ttype\tlevel\tsource\r\n" + "\r\n".join(lines) + "\r\n").encode())
    got, _ = read_genes(bed, genome)
    assert [(g.name, list(g.tss), g.strand, g.locus) for g in got if g.name in names] == want
    bed.write_text("20\t100\t200\n")
    with pytest.raises(InputError, match="genes.bed: line 1: .*3 tab-separated columns"):
        read_genes(bed, genome)


def test_finished_output_kept_unless_force_and_a_second_run_is_refused(tmp_path, tiny_model):
    header, body = real_records(20)
    vcf = write_vcf(tmp_path / "v.vcf", header, body)
    genes = tmp_path / "genes.bed"
    first = int(body[0].split("\t")[1])
    genes.write_text(f"20\t{first + 500}\t{first + 501}\tNEAR\t0\t-\n")
    out = tmp_path / "out"
    run_script("sed.py", tiny_model, vcf, genes, "-f", FASTA, "-o", out, "-q", check=True)
    before = {n: (out / n).read_bytes() for n in ("sed.h5", "sed.tsv")}
    proc = run_script("sed.py", tiny_model, vcf, genes, "-f", FASTA, "-o", out, "-q")
    assert_clean_failure(proc, str(out), "already holds sed.h5, sed.tsv", "--force")
    assert {n: (out / n).read_bytes() for n in before} == before
    # a run into an output another run holds: one error naming that run's process
    with files.claim(out):
        proc = run_script("sed.py", tiny_model, vcf, genes, "-f", FASTA, "-o", out, "-q", "--force")
    assert_clean_failure(proc, str(out), f"another run (process {os.getpid()})")
    assert {n: (out / n).read_bytes() for n in before} == before
    run_script("sed.py", tiny_model, vcf, genes, "-f", FASTA, "-o", out, "-q", "--force", check=True)
    assert sorted(os.listdir(out)) == ["sed.h5", "sed.tsv"]


def test_unwritable_output_is_one_error_before_any_work(tmp_path, tiny_model):
    header, body = real_records(20)
    vcf = write_vcf(tmp_path / "v.vcf", header, body)
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = read_only(locked)
    proc = subprocess.run([*prefix, str(BIN_DIR / "sed.py"), str(tiny_model), str(vcf), str(TSS), "-f", str(FASTA),
                           "-o", str(locked / "out")], capture_output=True, text=True, timeout=600)
    assert_clean_failure(proc, str(locked / "out"), "read-only file system")
    assert "variants to score" not in proc.stderr  # refused before the VCF was read
    (tmp_path / "file").write_text("x")
    proc = run_script("sed.py", tiny_model, vcf, TSS, "-f", FASTA, "-o", tmp_path / "file" / "out")
    assert_clean_failure(proc, "is a file, not a folder")
