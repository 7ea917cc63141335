"""Genotype VCFs (basenji_tk.io.genotypes): dosages, missing calls, multi-allelic records, compression.

Small VCFs here are GENERATED (genotypes from a copying model: :func:`gen_haplotypes`, written
by :func:`write_vcf`, also used by test_ld.py and test_sedld.py). Real genotypes come from
data/variants_1kg.vcf.gz and ../shared/data/grch37_chr20/unphased.vcf.gz.
"""

import numpy as np
import pytest

from basenji_tk.errors import InputError
from basenji_tk.io import genotypes
from conftest import DATA, shared


# ----------------------------------------------------------------------------- generated inputs
def gen_haplotypes(n_var, n_samp, rng, copy=0.85):
    """``(n_var, 2 * n_samp)`` 0/1 haplotypes in LD: each allele copies the previous variant's
    allele with probability ``copy``, else is drawn with a variant-specific frequency. GENERATED."""
    freq = rng.uniform(0.1, 0.5, n_var)
    h = np.zeros((n_var, 2 * n_samp), dtype=np.int8)
    h[0] = rng.random(2 * n_samp) < freq[0]
    for v in range(1, n_var):
        fresh = rng.random(2 * n_samp) < freq[v]
        h[v] = np.where(rng.random(2 * n_samp) < copy, h[v - 1], fresh)
    return h


def write_vcf(path, chrom, pos1, ids, refs, alts, gts, samples):
    """A plain-text VCF with GT only; ``gts`` is ``(V, N)`` strings. GENERATED test data."""
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write(f"##contig=<ID={chrom}>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n")
        for v in range(len(pos1)):
            fh.write(f"{chrom}\t{pos1[v]}\t{ids[v]}\t{refs[v]}\t{alts[v]}\t.\t.\t.\tGT\t" + "\t".join(gts[v]) + "\n")
    return path


# ----------------------------------------------------------------------------- reading
def test_genotypes_missing_multiallelic_unphased(tmp_path):
    vcf = write_vcf(tmp_path / "g.vcf", "chr20", [101, 201], ["rsA", "."], ["A", "C"], ["G", "T,G"],
                    [["0/1", "1|1", "./.", "0|0"], ["1/2", ".|1", "2/2", "0|1"]], ["a", "b", "c", "d"])
    g = genotypes.read_genotypes(vcf, samples=["d", "b", "zz"])
    assert g.samples == ["b", "d"] and g.counts["samples_not_found"] == 1
    g = genotypes.read_genotypes(vcf)
    assert list(g.chrom) == ["20"] * 3 and list(g.pos) == [100, 200, 200]
    assert list(g.ids) == ["rsA", "chr20:201:C:T", "chr20:201:C:G"]
    np.testing.assert_array_equal(g.dosage, [[1, 2, -1, 0], [1, -1, 0, 1], [1, -1, 2, 0]])
    assert g.counts["missing_calls"] == 2 and g.counts["multiallelic_records"] == 1


def test_genotypes_from_plain_gzip_bgzip_and_csi_indexed_vcfs(tmp_path):
    """The real 1000 Genomes genotypes of data/variants_1kg.vcf.gz, decompressed and recompressed
    with plain gzip: read by streaming, the same dosages; a malformed line is named."""
    import gzip

    with gzip.open(DATA / "variants_1kg.vcf.gz", "rt") as fh:
        lines = [next(fh) for _ in range(600)]
    plain = tmp_path / "g.vcf"
    plain.write_text("".join(lines))
    with gzip.open(tmp_path / "g.vcf.gz", "wt") as fh:  # plain gzip, not bgzip
        fh.write("".join(lines))
    want = genotypes.read_genotypes(plain)
    got = genotypes.read_genotypes(tmp_path / "g.vcf.gz", samples=want.samples[:50])
    assert len(want.pos) == 600 - sum(x.startswith("#") for x in lines)
    np.testing.assert_array_equal(got.dosage, want.dosage[:, :50])
    np.testing.assert_array_equal(got.pos, want.pos)
    n_header = sum(x.startswith("#") for x in lines)
    bad = lines[:n_header + 9] + ["\t".join(lines[n_header + 9].split("\t")[:6]) + "\n"] + lines[n_header + 10:]
    with gzip.open(tmp_path / "bad.vcf.gz", "wt") as fh:
        fh.write("".join(bad))
    with pytest.raises(InputError, match=rf"bad.vcf.gz: line {n_header + 10}: 6 tab-separated columns where 8"):
        genotypes.read_genotypes(tmp_path / "bad.vcf.gz")
    # another caller's layout: unphased, csi index, fetched by region
    u = genotypes.read_genotypes(shared("grch37_chr20", "unphased.vcf.gz"), regions={"20": (1_000_000, 1_100_000)})
    assert len(u.pos) > 0 and u.pos.min() >= 1_000_000 and u.pos.max() < 1_100_000
