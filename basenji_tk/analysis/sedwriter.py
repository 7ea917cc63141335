"""``sed.h5`` and ``sed.tsv``: the resumable output of ``sed.py``.

:class:`SedWriter` appends one window's rows at a time under ``.partial`` names and records,
after each window, what is finished, so an interrupted run continues (``--restart``) without
rescoring finished windows; :func:`check_restart_inputs` refuses a restart whose input files
changed since.
"""

from __future__ import annotations

import io
import logging
import os

import numpy as np

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

H5_NAME, TSV_NAME = "sed.h5", "sed.tsv"
PARTIAL = ".partial"  # an unfinished run's outputs, kept for --restart


class SedWriter:
    """``sed.h5`` and ``sed.tsv`` appended window by window under ``.partial`` names.

    After each window the HDF5 file records the rows written, the TSV's length and the window's
    key in ``done``, so ``restart`` can drop anything written after the last finished window
    and skip the finished ones. ``close`` renames both files into place.

    ``targets``: ``(index, id, label)`` per scored target; ``stats``: the statistic names, one
    ``(rows, targets)`` matrix each in sed.h5 and one column each in sed.tsv; ``names``: the two
    files' names; ``meta``: the per-row columns (:attr:`META`, or :attr:`VARIANT_META` for rows
    of variants scored without genes).
    """

    META = ("snp", "chrom", "pos", "ref", "alt", "flipped", "gene", "tss_dist")
    VARIANT_META = META[:6]  # rows of variants without genes

    def __init__(self, out_dir: str, targets: list[tuple[int, str, str]], stats: tuple, float32: bool, attrs: dict,
                 restart: bool, inputs: str = "{}", names: tuple = (H5_NAME, TSV_NAME), meta: tuple = META):
        import h5py

        self.h5_path, self.tsv_path = (os.path.join(out_dir, n) for n in names)
        self.h5_tmp, self.tsv_tmp = self.h5_path + PARTIAL, self.tsv_path + PARTIAL
        self.targets, self.stats, self.meta = targets, tuple(stats), tuple(meta)
        self.dtype = np.float32 if float32 else np.float16
        self.done = set()
        if restart and os.path.exists(self.h5_tmp) and os.path.exists(self.tsv_tmp):
            try:
                self.h5 = h5py.File(self.h5_tmp, "a")
            except OSError as err:
                raise InputError(f"{self.h5_tmp}: cannot reopen the interrupted run ({err}); run without "
                                 f"--restart") from None
            before = {k: self.h5.attrs.get(k) for k in attrs}
            changed = [k for k, v in attrs.items() if str(before[k]) != str(v)]
            if changed:
                self.h5.close()
                raise InputError(f"{self.h5_tmp}: --restart with a different {changed[0]} "
                                 f"({before[changed[0]]} before, {attrs[changed[0]]} now); run without --restart")
            rows = int(self.h5.attrs["rows"])
            for name in (*self.meta, *self.stats):
                self.h5[name].resize(rows, axis=0)
            done = self.h5["done"]
            done.resize(int(self.h5.attrs["windows"]), axis=0)
            self.done = {k.decode() for k in done[:]}
            self.tsv = open(self.tsv_tmp, "r+")
            self.tsv.truncate(int(self.h5.attrs["tsv_bytes"]))
            self.tsv.seek(0, os.SEEK_END)
            log.info(f"restart: {len(self.done):,} windows ({rows:,} rows) already scored in {self.h5_tmp}")
            return
        self.h5 = h5py.File(self.h5_tmp, "w")
        string = h5py.string_dtype()
        for name in self.meta:
            dtype = {"pos": np.int64, "tss_dist": np.int64, "flipped": bool}.get(name, string)
            self.h5.create_dataset(name, (0,), maxshape=(None,), dtype=dtype, chunks=True)
        for name in self.stats:
            self.h5.create_dataset(name, (0, len(targets)), maxshape=(None, len(targets)), dtype=self.dtype,
                                   chunks=(max(1, 65536 // max(1, len(targets))), len(targets)))
        self.h5.create_dataset("done", (0,), maxshape=(None,), dtype=string, chunks=True)
        self.h5.create_dataset("target_index", data=np.array([t[0] for t in targets], dtype=np.int64))
        self.h5.create_dataset("target_ids", data=np.array([t[1] for t in targets], dtype="S"))
        self.h5.create_dataset("target_labels", data=np.array([t[2] for t in targets], dtype="S"))
        self.h5.attrs.update(attrs, rows=0, windows=0, tsv_bytes=0, inputs=inputs)
        self.tsv = open(self.tsv_tmp, "w")
        self.tsv.write("\t".join((*self.meta, "target_index", "target_id", *self.stats)) + "\n")
        self.tsv.flush()
        self.h5.attrs["tsv_bytes"] = self.tsv.tell()

    def add(self, key: str, meta: dict, stats) -> None:
        """One window's rows: ``meta[name]`` lists of length P, ``stats`` ``(P, len(self.stats), targets)``."""
        n = len(meta["snp"])
        if n:
            heads = ["\t".join(str(meta[name][i]) for name in self.meta) for i in range(n)]
            labels = [f"{index}\t{tid}" for index, tid, _ in self.targets]
            values = np.asarray(stats, dtype=np.float64).transpose(0, 2, 1).reshape(n * len(labels), len(self.stats))
            text = io.StringIO()
            np.savetxt(text, values, fmt="%.6g", delimiter="\t")
            rows = text.getvalue().splitlines()
            t = len(labels)
            self.tsv.write("".join(f"{heads[r // t]}\t{labels[r % t]}\t{row}\n" for r, row in enumerate(rows)))
            self.tsv.flush()
            rows = int(self.h5.attrs["rows"])
            for name in self.meta:
                ds = self.h5[name]
                ds.resize(rows + n, axis=0)
                ds[rows:] = np.asarray(meta[name], dtype=bool if name == "flipped" else None)
            for s, name in enumerate(self.stats):
                ds = self.h5[name]
                ds.resize(rows + n, axis=0)
                ds[rows:] = stats[:, s, :].astype(self.dtype)
            self.h5.attrs["rows"] = rows + n
        done = self.h5["done"]
        windows = int(self.h5.attrs["windows"])
        done.resize(windows + 1, axis=0)
        done[windows] = key
        self.h5.attrs.update(windows=windows + 1, tsv_bytes=self.tsv.tell())
        self.h5.flush()
        self.done.add(key)

    def close(self, counts: dict) -> tuple[str, str]:
        self.h5.attrs.update({f"count_{k}": v for k, v in counts.items()})
        self.h5.close()
        self.tsv.close()
        os.replace(self.h5_tmp, self.h5_path)
        os.replace(self.tsv_tmp, self.tsv_path)
        return self.h5_path, self.tsv_path

    def abort(self) -> None:
        """Close, keeping the partial files for --restart."""
        try:
            self.h5.close()
        finally:
            self.tsv.close()


def resumable(out_dir, names=((H5_NAME, TSV_NAME),)) -> bool:
    """Whether ``out_dir`` holds the partial files of an interrupted run that writes the ``(h5, tsv)`` ``names``."""
    return all(os.path.exists(os.path.join(str(out_dir), n + PARTIAL)) for pair in names for n in pair)


def check_restart_inputs(out_dir, inputs: dict, h5_name: str = H5_NAME) -> None:
    """On --restart: refuse when a file the interrupted run read (``{what: path}``) changed since.

    The interrupted run saved :func:`files.fingerprint` of each in the partial sed.h5's ``inputs``
    attribute (JSON): size, mtime and a SHA-256 of the first and last MiB and 16 sampled blocks.
    """
    import json

    import h5py

    from basenji_tk import files

    h5_tmp = os.path.join(str(out_dir), h5_name + PARTIAL)
    try:
        with h5py.File(h5_tmp, "r") as h5:
            saved = h5.attrs.get("inputs")
    except OSError as err:
        raise InputError(f"{h5_tmp}: cannot reopen the interrupted run ({err}); run without --restart") from None
    if saved is None:
        raise InputError(f"{h5_tmp}: the interrupted run saved no fingerprints of its inputs, so --restart cannot "
                         "tell whether they changed; run without --restart")
    saved = json.loads(saved)
    for what, path in inputs.items():
        before = saved.get(what)
        if before is None or os.path.abspath(str(path)) != before.get("path"):
            raise InputError(f"{path}: --restart with a different {what} (the interrupted run read "
                             f"{(before or {}).get('path')}); run without --restart")
        files.check_unchanged(before, path, what)
