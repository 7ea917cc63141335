"""BAM to coverage tracks, as ``bam_cov.py`` runs it: read events, multi-mapping EM, the GC
model, compiled kernels and track writing.

Names that ``basenji_tk.coverage`` held when it was one module still resolve here, with a
DeprecationWarning naming their new module.
"""

from basenji_tk import moved_attribute

# the modules that took over the flat 0.1 module's names (searched in this order)
_FORMER = ("core",)


def __getattr__(name):
    return moved_attribute(__name__, _FORMER, name)
