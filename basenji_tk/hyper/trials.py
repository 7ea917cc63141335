"""Trial records: one finished trial (:class:`Trial`) and the search's trials.tsv (:class:`TrialLog`)."""

import math
import os
import re
from dataclasses import dataclass

from basenji_tk.errors import InputError
from basenji_tk.hyper.domain import Domain

FIXED_COLUMNS = ("objective", "epochs", "seconds", "status", "error")


@dataclass
class Trial:
    """One finished trial. ``objective``: the value in its own units (nan when failed)."""

    number: int
    values: dict
    objective: float = float("nan")
    epochs: int | str = ""
    seconds: float = 0.0
    status: str = "ok"
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and math.isfinite(self.objective)


class TrialLog:
    """trials.tsv: a header, then one full line per finished trial (written, flushed, fsynced)."""

    def __init__(self, path, domain: Domain):
        self.path, self.domain = str(path), domain
        self.columns = ["trial", *domain.paths, *FIXED_COLUMNS]

    def read(self) -> list:
        """The finished trials; a line without its newline (a kill while writing) is dropped from the file."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as fh:
            data = fh.read()
        if data and not data.endswith(b"\n"):
            keep = data[:data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(keep))
            data = keep
        lines = data.decode().splitlines()
        if not lines:
            return []
        if lines[0].split("\t") != self.columns:
            raise InputError(f"{self.path}: columns {lines[0].split(chr(9))} are not this search's {self.columns}")
        trials = []
        for n, line in enumerate(lines[1:], start=2):
            cells = line.split("\t")
            try:
                row = dict(zip(self.columns, cells, strict=True))
                values = {d.path: d.parse_cell(row[d.path]) for d in self.domain.dims}
                trials.append(Trial(int(row["trial"]), values, float(row["objective"] or "nan"),
                                    int(row["epochs"]) if row["epochs"] else "", float(row["seconds"] or 0),
                                    row["status"], row["error"]))
            except ValueError as err:
                raise InputError(f"{self.path}: line {n} is not a trial row ({err})") from None
        return trials

    def _append(self, text: str):
        with open(self.path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def start(self):
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            self._append("\t".join(self.columns) + "\n")

    def append(self, t: Trial):
        error = re.sub(r"\s+", " ", t.error).strip()[:500]
        cells = [str(t.number), *(d.cell(t.values[d.path]) for d in self.domain.dims),
                 "" if not math.isfinite(t.objective) else repr(float(t.objective)), str(t.epochs),
                 f"{t.seconds:.1f}", t.status, error]
        self._append("\t".join(cells) + "\n")
