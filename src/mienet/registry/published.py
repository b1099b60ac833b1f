"""The published numbers the comparison tables put beside this project's.

Copied from ``docs/mie-net.md``, section "What was reported (seed README, model zoo)";
the numbers are kept as printed there (``80.2`` stays ``80.2``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mienet.errors import MienetError

SOURCE = "docs/mie-net.md, “What was reported” (seed README, model zoo)"


@dataclass(frozen=True)
class PublishedRow:
    dataset: str  # this project's dataset name
    model: str  # as the source names it
    counterpart: str | None  # the project's variant that corresponds, if any
    frames: str
    top1: str  # as printed
    top5: str  # as printed; "" when not reported
    source: str = "paper/README"


BUILTIN: tuple[PublishedRow, ...] = (
    # The model zoo's "DPTAM" rows take 3+3*4 / 8+8*4 frames, so they consume the PA
    # frames: most likely `fusion_dptam` (MIE-Net without AFM), not `dptam`.
    PublishedRow("sljd", "DPTAM", "fusion_dptam", "3+3*4", "90.69", "98.99"),
    PublishedRow("sljd", "MIE-Net", "mienet", "3+3*4", "94.48", "99.65"),
    PublishedRow("diving48", "DPTAM", "fusion_dptam", "8+8*4", "77.61", "96.54"),
    PublishedRow("diving48", "MIE-Net", "mienet", "8+8*4", "80.2", "98.17"),
    PublishedRow("sthv2", "MIE-Net", "mienet", "8+8*4", "60.9", "86.9"),
    # "For context": not the MIE-Net paper's number, a widely used framework's.
    PublishedRow("sthv2", "TSM ResNet-50 (context)", None, "8", "62.7", "", "framework, for context"),
)

CSV_COLUMNS = ("dataset", "model", "counterpart", "frames", "top1", "top5", "source")


def load_published(spec: str) -> tuple[PublishedRow, ...]:
    """``builtin`` (the table above), ``none``, or a CSV file with :data:`CSV_COLUMNS`."""
    if spec == "builtin":
        return BUILTIN
    if spec == "none":
        return ()
    path = Path(spec)
    if not path.is_file():
        raise MienetError(f"--published {spec}: not 'builtin', 'none' or an existing CSV file")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("dataset", "model", "frames", "top1") if c not in (reader.fieldnames or [])]
        if missing:
            raise MienetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                float(r["top1"])
            except ValueError:
                raise MienetError(f"{path}, line {line}: top1 {r['top1']!r} is not a number") from None
            rows.append(PublishedRow(r["dataset"], r["model"], r.get("counterpart") or None, r["frames"],
                                     r["top1"], r.get("top5") or "", r.get("source") or "paper/README"))
    return tuple(rows)
