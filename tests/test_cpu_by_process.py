"""benchmarks/cpu_by_process.py: every process a command starts is counted, by kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from cpu_by_process import kind  # noqa: E402


def test_processes_are_named_by_their_kind():
    assert kind(["ray::RayTrainWorker.__init__"]) == "ray::RayTrainWorker.__init__"
    assert kind(["/v/bin/python", "-m", "mmbert.train", "--phase", "pretrain"]) == "mmbert.train"
    assert kind(["/v/bin/python", "-m", "dvc", "repro"]) == "dvc"
    assert kind(["/v/bin/python", "/v/lib/ray/dashboard/dashboard.py", "--host=127.0.0.1"]) == "dashboard"
    assert kind(["/usr/bin/sleep", "3"]) == "sleep 3"
    assert kind([]) == "?"


def test_a_grandchild_that_leaves_the_tree_is_counted():
    # the child starts a detached busy process (as Ray's daemons are) and returns at once
    busy = "import time; t = time.process_time(); exec('while time.process_time() - t < 1.5: pass')"
    launcher = (f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {busy!r}], start_new_session=True); "
                "import time; time.sleep(2.5)")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cpu_by_process.py"), "--every", "0.1", "--",
                          sys.executable, "-c", launcher], capture_output=True, text=True, check=True).stdout
    rows = {line[10:].strip(): float(line[:9]) for line in out.splitlines()[2:] if line.strip()}
    detached = [cpu for name, cpu in rows.items() if name.startswith(f"{Path(sys.executable).name} -c import time;")]
    assert len(detached) == 1 and detached[0] >= 1.3, out
