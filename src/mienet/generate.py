"""``mienet generate``: write the files derived from the one definition of each fact.

- ``workflow/schemas/params.schema.yaml`` from the typed configuration model (:mod:`mienet.config`);
- ``dvc.yaml`` from the stage specs (:mod:`mienet.stages`) for the active profile of ``--params``
  (or ``--profile``).

It also checks that the SLURM profile's rule families are the stages' (a family naming no stage,
or a stage without resources, is an error).

``--check`` writes nothing and exits 1 naming each file that differs from what would be
written (the test suite runs it). Switching DVC to the paper profile::

    mienet generate --profile paper     # then: dvc repro, dvc repro train@sljd-mienet-0, ...
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from mienet.config import SCHEMA_FILE, load_params, name_arg, schema_text
from mienet.errors import MienetError
from mienet.io import environment_tool, write_text_atomic
from mienet.stages import DVC_FILE, SLURM_PROFILE, dvc_yaml_text, profile_family_problems


def add_arguments(parser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="default: params.yaml")
    parser.add_argument("--profile", type=name_arg, help="write dvc.yaml for this profile (default: `profile` of --params)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a generated file is out of date")
    parser.add_argument("--root", type=Path, default=Path("."), help="project folder (default: .)")


def generated_files(params_path: Path, profile: str | None = None, root: Path = Path(".")) -> dict[Path, str]:

    params = load_params(params_path)
    if profile is not None:
        if profile not in params["profiles"]:
            raise MienetError(f"--profile {profile!r} is not a key of profiles in {params_path} "
                              f"({', '.join(params['profiles'])})")
        params = {**params, "profile": profile}
    return {root / SCHEMA_FILE: schema_text(), root / DVC_FILE: dvc_yaml_text(params)}


PARKED_LOCK = Path(".dvc") / "tmp" / "mienet-parked-dvc.lock"


def prune_lock(root: Path) -> tuple[list[str], list[str]]:
    """Keep dvc.lock to the stages dvc.yaml has, without losing the others.

    The entries of stages dvc.yaml no longer has (a profile switched, a stage renamed) move to
    ``.dvc/tmp/mienet-parked-dvc.lock``; the parked entries of stages that are back (the profile
    switched back) and missing from dvc.lock return, so those stages are up to date again if
    nothing of theirs changed. Returns (parked, restored) stage names. Needs DVC and a .dvc folder."""
    lock, parked_file = root / "dvc.lock", root / PARKED_LOCK
    dvc = environment_tool("dvc")
    if not (lock.is_file() or parked_file.is_file()) or not (root / ".dvc").is_dir() or dvc is None:
        return [], []
    proc = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        return [], []
    names = proc.stdout.split()
    data = (yaml.safe_load(lock.read_text(encoding="utf-8")) if lock.is_file() else None) or {"schema": "2.0"}
    stages = data.get("stages") or {}
    parked = (yaml.safe_load(parked_file.read_text(encoding="utf-8")) if parked_file.is_file() else None) or {}
    stale = [name for name in stages if name not in names]
    back = [name for name in names if name not in stages and name in parked]
    if not stale and not back:
        return [], []
    parked.update({name: stages[name] for name in stale})
    kept = {name: stages[name] if name in stages else parked[name] for name in names if name in stages or name in back}
    for name in back:
        del parked[name]
    data["stages"] = kept
    parked_file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(parked_file, yaml.safe_dump(parked, sort_keys=False))  # first: nothing is lost
    write_text_atomic(lock, yaml.safe_dump(data, sort_keys=False))
    return stale, back


def run(args) -> int:
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
        parked, restored = prune_lock(args.root)
        if parked:
            print(f"generate: parked {len(parked)} stage(s) of dvc.lock that dvc.yaml no longer has in "
                  f"{PARKED_LOCK} (they come back with their stages)")
        if restored:
            print(f"generate: restored {len(restored)} stage(s) of dvc.lock from {PARKED_LOCK}")
    profile = args.root / SLURM_PROFILE
    problems = profile_family_problems(profile) if profile.is_file() else []
    for problem in problems:
        print(f"generate: {problem}", file=sys.stderr)
    if stale:
        print(f"generate: out of date: {', '.join(stale)}; run `mienet generate`"
              + (f" --profile {args.profile}" if args.profile else ""), file=sys.stderr)
        return 1
    return 1 if problems else 0
