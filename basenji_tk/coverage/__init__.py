"""BAM to coverage tracks, as ``bam_cov.py`` runs it: read events, multi-mapping EM, the GC
model, compiled kernels and track writing.

    events      reading the BAM, unique and multi-mapping reads, the fragment shift
    em          multi-mapping reads shared by an EM on smoothed coverage
    gc          the GC-bias model: GC around every base, the fit, its report and plot
    tracks      coverage chunk by chunk, BigWig/HDF5 writing
    pipeline    the whole run: bam_cov, its Options and Summary
    checks      the user's inputs: outputs, the BAM header, FASTA lengths, stranded data
    kernels     the compiled (numba) loops

Names that ``basenji_tk.coverage`` held when it was one module still resolve here, with a
DeprecationWarning naming their new module.
"""

from basenji_tk import moved_attribute

# the modules that took over the flat 0.1 module's names, searched in this order: each before the
# modules that import names from it, so a name resolves to (and its warning names) its own home
_FORMER = ("events", "em", "tracks", "gc", "pipeline", "checks")


def __getattr__(name):
    return moved_attribute(__name__, _FORMER, name)
