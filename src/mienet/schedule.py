"""Wall-clock of a set of GPU jobs on G GPUs: the critical path and a list schedule.

A job needs ``gpus`` GPUs for ``hours`` and may wait for other jobs (``after``). The critical
path is the longest chain of hours through the dependencies, a lower bound however many GPUs
there are. :func:`list_schedule` places the jobs on ``G`` GPUs as a cluster's scheduler would,
greedily: whenever GPUs free up, the ready job with the longest remaining chain (its own hours
plus its longest chain of successors) that fits starts; ties go to the job listed first. Its
makespan is an upper bound of what an optimal schedule reaches, and with the critical path it
brackets the wall-clock a lab sees. Used by ``mienet sizing --gpus``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from mienet.errors import MienetError


@dataclass(frozen=True)
class Job:
    name: str
    hours: float
    gpus: int = 1
    after: tuple[str, ...] = field(default_factory=tuple)


def _check(jobs: Sequence[Job]) -> dict[str, Job]:
    by = {}
    for j in jobs:
        if j.name in by:
            raise MienetError(f"job {j.name!r} is listed twice")
        if j.hours < 0 or j.gpus < 1:
            raise MienetError(f"job {j.name!r}: hours must not be negative and gpus at least 1")
        by[j.name] = j
    for j in jobs:
        missing = [a for a in j.after if a not in by]
        if missing:
            raise MienetError(f"job {j.name!r} waits for unknown job(s): {', '.join(missing)}")
    return by


def chains(jobs: Sequence[Job]) -> dict[str, float]:
    """For each job, its hours plus the longest chain of jobs that wait for it (its "bottom level")."""
    by = _check(jobs)
    successors: dict[str, list[str]] = {n: [] for n in by}
    for j in jobs:
        for a in j.after:
            successors[a].append(j.name)
    level: dict[str, float] = {}
    visiting: set[str] = set()

    def bottom(name: str) -> float:
        if name in level:
            return level[name]
        if name in visiting:
            raise MienetError(f"the jobs' dependencies form a cycle through {name!r}")
        visiting.add(name)
        level[name] = by[name].hours + max((bottom(s) for s in successors[name]), default=0.0)
        visiting.discard(name)
        return level[name]

    for n in by:
        bottom(n)
    return level


def critical_path(jobs: Sequence[Job]) -> float:
    """Hours of the longest dependency chain (0 without jobs)."""
    return max(chains(jobs).values(), default=0.0)


def list_schedule(jobs: Sequence[Job], gpus: int) -> dict:
    """Greedy list schedule of ``jobs`` on ``gpus`` GPUs (see the module's text):
    ``{"makespan_h", "start": {name: h}, "end": {name: h}}``. A job needing more GPUs than there
    are is an error."""
    if gpus < 1:
        raise MienetError(f"--gpus must be at least 1, got {gpus}")
    level = chains(jobs)
    too_big = [j.name for j in jobs if j.gpus > gpus]
    if too_big:
        raise MienetError(f"{len(too_big)} job(s) need more than {gpus} GPU(s), e.g. {too_big[0]}")
    order = {j.name: i for i, j in enumerate(jobs)}
    waiting = {j.name: set(j.after) for j in jobs}
    by = {j.name: j for j in jobs}
    ready = [(-level[n], order[n], n) for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, int, str]] = []  # (end, order, name)
    free, now = gpus, 0.0
    start, end = {}, {}
    while ready or running:
        blocked = []
        while ready:  # start every ready job that fits, longest chain first
            item = heapq.heappop(ready)
            job = by[item[2]]
            if job.gpus <= free:
                free -= job.gpus
                start[job.name], end[job.name] = now, now + job.hours
                heapq.heappush(running, (end[job.name], order[job.name], job.name))
            else:
                blocked.append(item)
        for item in blocked:
            heapq.heappush(ready, item)
        if not running:
            break
        now, _, name = heapq.heappop(running)
        finished = [name]
        while running and running[0][0] <= now:  # every job ending at the same time
            finished.append(heapq.heappop(running)[2])
        for name in finished:
            free += by[name].gpus
            for other, deps in waiting.items():
                if name in deps:
                    deps.discard(name)
                    if not deps and other not in start:
                        heapq.heappush(ready, (-level[other], order[other], other))
    return {"makespan_h": max(end.values(), default=0.0), "start": start, "end": end}
