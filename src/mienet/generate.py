"""``mienet generate``: write the files derived from the one definition of each fact.

- ``workflow/schemas/params.schema.yaml`` from the typed configuration model (:mod:`mienet.config`);
- ``dvc.yaml`` from the pipeline definition (:mod:`mienet.pipeline`) for the active profile
  of ``--params`` (or ``--profile``).

``--check`` writes nothing and exits 1 naming each file that differs from what would be
written (the test suite runs it). Switching DVC to the paper profile::

    mienet generate --profile paper     # then: dvc repro, dvc repro train@sljd-mienet-0, ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from mienet.errors import MienetError


def add_arguments(parser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="default: params.yaml")
    parser.add_argument("--profile", help="write dvc.yaml for this profile (default: `profile` of --params)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a generated file is out of date")
    parser.add_argument("--root", type=Path, default=Path("."), help="project folder (default: .)")


def generated_files(params_path: Path, profile: str | None = None, root: Path = Path(".")) -> dict[Path, str]:
    from mienet.config import SCHEMA_FILE, load_params, schema_text
    from mienet.pipeline import DVC_FILE, dvc_yaml_text

    params = load_params(params_path)
    if profile is not None:
        if profile not in params["profiles"]:
            raise MienetError(f"--profile {profile!r} is not a key of profiles in {params_path} "
                              f"({', '.join(params['profiles'])})")
        params = {**params, "profile": profile}
    return {root / SCHEMA_FILE: schema_text(), root / DVC_FILE: dvc_yaml_text(params)}


def prune_lock(root: Path) -> list[str]:
    """Drop the entries of dvc.lock whose stage dvc.yaml no longer has (DVC keeps them after a
    stage is renamed or a profile switched); returns their names. Needs DVC and a .dvc folder."""
    import subprocess

    import yaml

    from mienet.io import environment_tool, write_text_atomic

    lock = root / "dvc.lock"
    dvc = environment_tool("dvc")
    if not lock.is_file() or not (root / ".dvc").is_dir() or dvc is None:
        return []
    proc = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    names = set(proc.stdout.split())
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    stale = [name for name in data.get("stages", {}) if name not in names]
    if stale:
        data["stages"] = {k: v for k, v in data["stages"].items() if k in names}
        write_text_atomic(lock, yaml.safe_dump(data, sort_keys=False))
    return stale


def run(args) -> int:
    from mienet.io import write_text_atomic

    stale = []
    for path, text in generated_files(args.params, args.profile, args.root).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            print(f"generate: {path} is up to date")
            continue
        if args.check:
            stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        print(f"generate: wrote {path}")
    if not args.check:
        dropped = prune_lock(args.root)
        if dropped:
            print(f"generate: dropped {len(dropped)} stage(s) of dvc.lock that dvc.yaml no longer has")
    if stale:
        print(f"generate: out of date: {', '.join(stale)}; run `mienet generate`"
              + (f" --profile {args.profile}" if args.profile else ""), file=sys.stderr)
        return 1
    return 0
