"""The bundled demo data: present, small, documented, coherent."""

import os

import pysam

from basenji_tk.data import targets as tg
from conftest import DATA, FASTA, TARGETS


def test_every_file_is_documented_and_the_folder_is_small():
    readme = (DATA / "README.md").read_text()
    files = [f for f in os.listdir(DATA) if f not in ("README.md", "__pycache__")]
    for f in files:
        if not f.endswith((".fai", ".gzi", ".tbi", ".csi", ".bai")):
            assert f in readme, f"{f} is not described in data/README.md"
    assert sum(os.path.getsize(DATA / f) for f in files) < 15 * 2**20


def test_annotations_agree_with_the_genome():
    with pysam.FastaFile(str(FASTA)) as fa:
        assert dict(zip(fa.references, fa.lengths)) == {"20": 20_000_000}
        # TSSs on the + strand of protein-coding genes: most start codons are not at the TSS,
        # but every TSS lies on real sequence, not in the N gap
        for line in open(DATA / "tss.bed"):
            f = line.split("\t")
            assert f[0] == "20" and 60_000 <= int(f[1]) < 20_000_000
            assert fa.fetch("20", int(f[1]), int(f[2])) in "ACGT"
    with pysam.VariantFile(str(DATA / "variants_1kg.vcf.gz")) as vcf, pysam.FastaFile(str(FASTA)) as fa:
        for n, rec in enumerate(vcf.fetch("20", 1_000_000, 1_100_000)):
            assert fa.fetch("20", rec.start, rec.stop).upper() == rec.ref.upper()
        assert n > 100
    assert [t.identifier for t in tg.read_targets(TARGETS)] == ["ctcf", "cpg", "tss"]
