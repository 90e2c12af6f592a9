"""Where a run's memory goes: run a module under a sampler that reads the resident set size
(RSS) every 50 ms together with the main thread's stack, and write per rank the peak RSS
with the stack at the peak, the largest RSS seen in each function (innermost ``rom``
frame), and a timeline of the RSS (start / largest / end) per stage of the run.

    mpiexec -n 2 python tools/peak_stack.py rom.study case.yaml --limit 1 --quiet
    PEAK_STACK_OUT=out/prof/size2 mpiexec -n 2 python tools/peak_stack.py rom.offline case.yaml

Writes ``<PEAK_STACK_OUT>.<rank>.txt`` (default ``peak_stack.<rank>.txt``). The stages are
the rom frames 3 to 7 of the stack (e.g. ``run_study > solve > solve > march > step``),
with the innermost frame of ``rom/online/enrich.py`` or of the ECM when there is one.
Linux only (``/proc/self/statm``); the sampler's own cost is a few percent.
"""
from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
import traceback

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 2 ** 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Sampler:
    def __init__(self, period: float = 0.05):
        self.period, self.stop = period, False
        self.main = threading.main_thread().ident
        self.peak, self.peak_stack = 0, []
        self.by_function: dict[str, int] = {}
        self.timeline: list[list] = []      # [stage, start, largest, end] in bytes

    def _stack(self) -> list[str]:
        frame = sys._current_frames().get(self.main)
        if frame is None:
            return []
        return [f"{fs.filename.split('/rom/', 1)[-1]}:{fs.lineno} {fs.name}"
                for fs in traceback.extract_stack(frame) if "/rom/" in fs.filename]

    def run(self) -> None:
        while not self.stop:  # loop over samples
            r, stack = _rss(), self._stack()
            if stack:
                stage = " > ".join(x.split(" ")[1] for x in stack[2:7])
                inner = [x for x in stack if "enrich.py" in x or "ecm" in x]
                if inner:
                    stage += " | " + inner[-1]
                if self.timeline and self.timeline[-1][0] == stage:
                    last = self.timeline[-1]
                    last[2], last[3] = max(last[2], r), r
                else:
                    self.timeline.append([stage, r, r, r])
                self.by_function[stack[-1]] = max(self.by_function.get(stack[-1], 0), r)
            if r > self.peak:
                self.peak, self.peak_stack = r, stack
            time.sleep(self.period)

    def report(self, path: str) -> None:
        self.stop = True
        rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        lines = [f"[rank {rank}] peak {self.peak / MB:.0f} MB at:"]
        lines += [f"    {s}" for s in self.peak_stack]
        lines += [f"[rank {rank}] largest RSS by innermost rom frame:"]
        top = sorted(self.by_function.items(), key=lambda kv: -kv[1])[:15]
        lines += [f"    {v / MB:8.0f} MB  {k}" for k, v in top]
        lines += [f"[rank {rank}] timeline, MB (start / largest / end) per stage:"]
        lines += [f"    {a / MB:6.0f} {b / MB:6.0f} {c / MB:6.0f}  {k}"
                  for k, a, b, c in self.timeline]
        with open(f"{path}.{rank}.txt", "w") as f:
            f.write("\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sampler = Sampler()
    atexit.register(sampler.report, os.environ.get("PEAK_STACK_OUT", "peak_stack"))
    threading.Thread(target=sampler.run, daemon=True).start()
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
