"""Print a run's figures as markdown: per training phase its throughput and stage wall
time, the bench stage's inference throughput with ratios measured in the same run, and
the evaluation table.

    python benchmarks/summarize.py [outputs]  >> benchmarks/README.md
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from mmbert.config import load_config


def main(outputs: Path) -> None:
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}\n")
    print("| phase | steps | tokens | workers | train tokens/s | stage wall s | held-out loss |")
    print("|---|---|---|---|---|---|---|")
    for phase in load_config("params.yaml").phase_order():
        m = json.loads((outputs / "train" / phase / "metrics.json").read_text())
        print(f"| {m['phase']} | {m['steps']} | {m['tokens']} | {m['workers']} | {m['tokens_per_second']:.0f} "
              f"| {m['wall_seconds']:.0f} | {m['heldout_loss']:.3f} |")
    bench = json.loads((outputs / "bench" / "results.json").read_text())
    setup = bench["setup"]
    print(f"\nInference ({setup['documents']} documents, fixed length {setup['fixed_length']}, variable "
          f"~N({setup['variable_mean']}, {setup['variable_sd']}), batch {setup['batch_size']}, "
          f"{setup['torch_threads']} threads, {setup['device']}):\n")
    print("| model | parameters | fixed tokens/s | variable tokens/s |")
    print("|---|---|---|---|")
    models = bench["models"]
    for name, entry in models.items():
        s = entry["scenarios"]
        print(f"| {name} | {entry['parameters'] / 1e6:.1f}M | {s['fixed']['tokens_per_second']:.0f} "
              f"| {s['variable']['tokens_per_second']:.0f} |")
    def rate(name: str, scenario: str) -> float:
        return models[name]["scenarios"][scenario]["tokens_per_second"]

    for name in ("paper-small", "paper-small:unpadded", "merged:unpadded"):
        for scenario in ("fixed", "variable"):
            ratios = [f"{rate(name, scenario) / rate(other, scenario):.2f}x {label}"
                      for other, label in (("xlmr-base", "XLM-R-base"), (name.split(":")[0], "padded"))
                      if other in models and other != name and name in models]
            if ratios:
                print(f"\n{name} throughput ({scenario}, same run): " + ", ".join(ratios))
    report = outputs / "eval" / "report.md"
    if report.exists():
        print("\n" + report.read_text().replace("# Evaluation", "### Evaluation"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs"))
