"""What a suite will cost, said before it starts: trials, training steps, and device-hours at
the speed measured on the device the trials get (a few timed steps at full length, so the
figure is an upper bound: real batches are padded only to their longest sequence)."""

from __future__ import annotations

import math
import time

from mmbert.suites.trials import Settings, Trial

PROBE_STEPS = 3
OPTIONS_PER_EXAMPLE = {"choice": 3}  # a multiple-choice example is one sequence per option


def seconds_per_step(path: str, batch_size: int, max_length: int, device_name: str) -> float:
    """Time of one fine-tuning step (forward, backward, AdamW) at full length, after a warm-up step."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from mmbert.suites.finetune import device_for
    from mmbert.suites.trials import max_tokens

    transformers.logging.set_verbosity_error()
    device = device_for(device_name)
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    length = min(max_length, max_tokens(config))
    ids = torch.randint(5, config.vocab_size, (batch_size, length), device=device)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device)
    times = []
    for _ in range(PROBE_STEPS):
        start = time.perf_counter()
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def training_steps(trial: Trial, rows: dict, settings: Settings) -> int:
    steps = 0
    for step in trial.training.steps:
        n = rows[step.data] if settings.max_train_examples is None else min(rows[step.data], settings.max_train_examples)
        n *= OPTIONS_PER_EXAMPLE.get(trial.training.kind, 1)
        steps += (settings.epochs or step.epochs) * math.ceil(n / settings.batch_size)
    return steps


def estimate(trials: list[Trial], rows: dict, settings: Settings, remote_options: dict | None) -> dict:
    probes = sorted({(t.path, t.training.max_length) for t in trials})
    if remote_options is None:
        timed = [seconds_per_step(p, settings.batch_size, n, settings.device) for p, n in probes]
    else:
        import ray

        probe = ray.remote(**remote_options)(seconds_per_step)
        timed = ray.get([probe.remote(p, settings.batch_size, n, settings.device) for p, n in probes])
    speed = dict(zip(probes, timed))
    steps = {t.key: training_steps(t, rows, settings) for t in trials}
    seconds = sum(steps[t.key] * speed[(t.path, t.training.max_length)] for t in trials)
    return {"trials": len(trials), "training_steps": sum(steps.values()), "device_hours": seconds / 3600,
            "seconds_per_step": {f"{p} @ {n} tokens": s for (p, n), s in speed.items()},
            "batch_size": settings.batch_size}
