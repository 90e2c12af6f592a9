"""tools/peak_stack.py: the peak RSS and the stacks of a module run, written per rank."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_peak_stack_reports_the_peak_and_the_stages(tmp_path):
    out = tmp_path / "prof"
    script = tmp_path / "grow.py"
    # a module that allocates 200 MB inside a function, then frees it
    script.write_text("import time\nimport numpy as np\n\n\ndef grow():\n"
                      "    a = np.ones(25_000_000)\n    time.sleep(0.5)\n    return a.sum()\n\n\n"
                      "grow()\n")
    env = {**os.environ, "PEAK_STACK_OUT": str(out), "PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, str(ROOT / "tools/peak_stack.py"), "grow"], env=env,
                   check=True, cwd=tmp_path, timeout=120)
    text = (tmp_path / "prof.0.txt").read_text()
    peak = float(text.split("peak ")[1].split(" MB")[0])
    assert peak > 200                                   # the 200 MB array was seen
    assert "timeline, MB" in text and "largest RSS by innermost rom frame" in text
