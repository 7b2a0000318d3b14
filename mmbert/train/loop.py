"""One training phase, independent of Ray: the same object runs inside a Ray Train worker
(DDP over gloo or nccl) and in-process in unit tests (one worker, no process group)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mmbert.config import PhaseConfig, PipelineConfig
from mmbert.masking import mask_tokens
from mmbert.modeling import build_config, load_model, new_model
from mmbert.schedules import batch_size_at, phase_lr_at, phase_steps
from mmbert.tokenizer import load_tokenizer, special_ids
from mmbert.train.data import PackedShards
from mmbert.train.state import Progress, load_state, save_state, step_seed

log = logging.getLogger("mmbert.train")


@dataclass(frozen=True)
class PhasePaths:
    mix: str
    tokenizer: str
    init_model: str | None  # the previous phase's HF checkpoint, None to start from scratch


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """No weight decay on biases and norms (the paper's setting)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class PhaseTrainer:
    def __init__(
        self,
        cfg: PipelineConfig,
        phase: str,
        paths: PhasePaths,
        *,
        rank: int = 0,
        world: int = 1,
        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        self.cfg, self.name, self.rank, self.world = cfg, phase, rank, world
        self.phase: PhaseConfig = cfg.phases[phase]
        torch.set_num_threads(cfg.train.torch_threads)
        self.tokenizer = load_tokenizer(paths.tokenizer)
        self.ids = special_ids(self.tokenizer)
        self.data = PackedShards(paths.mix)
        self.model = self._build_model(paths, len(self.tokenizer))
        self.ddp_model = wrap(self.model) if wrap else self.model
        self.optimizer = self._build_optimizer()
        self.progress = Progress()
        self.total_steps = len(phase_steps(self.phase, world))
        self.tokens_per_second = 0.0  # global tokens per wall-clock second of this run

    def _build_model(self, paths: PhasePaths, vocab_size: int) -> torch.nn.Module:
        kwargs = dict(rope_theta_global=self.phase.rope_theta_global, rope_theta_local=self.phase.rope_theta_local,
                      attn_implementation=self.cfg.train.attn_implementation)
        if paths.init_model:
            return load_model(paths.init_model, sparse_prediction=True, **kwargs)
        config = build_config(self.cfg.model, vocab_size, special=self.ids, sparse_prediction=True, **kwargs)
        return new_model(config, seed=self.cfg.seed)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        # Fully decoupled weight decay: torch's AdamW multiplies decay by the current lr, so
        # dividing by the peak makes the applied decay wd·lr/peak (wd at peak lr).
        wd = self.phase.weight_decay / self.phase.lr.peak
        return torch.optim.AdamW(decay_groups(self.model, wd), lr=self.phase.lr.peak,
                                 betas=tuple(self.cfg.train.betas), eps=self.cfg.train.eps)

    @property
    def done(self) -> bool:
        return self.progress.tokens >= self.phase.data.tokens

    def train_step(self) -> dict[str, float]:
        p = self.progress
        size = batch_size_at(p.tokens, self.phase.batch, self.world)
        lr = phase_lr_at(p.tokens, self.phase.lr, self.phase.data.tokens)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rows = torch.from_numpy(self.data.batch(p.rows, size, self.rank, self.world, self.cfg.seed))
        seed = step_seed(self.cfg.seed, self.rank, p.step)
        inputs, labels = mask_tokens(rows, self.phase.mask_rate, mask_id=self.ids.mask, special_ids=self.ids.all(),
                                     vocab_size=self.model.config.vocab_size,
                                     generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed + 1)  # dropout
        self.ddp_model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.cfg.train.precision == "bf16"):
            loss = self.ddp_model(input_ids=inputs.to(self.device), attention_mask=(inputs != self.ids.pad).long().to(self.device),
                                  labels=labels.to(self.device)).loss
        loss.backward()
        if self.cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.ddp_model.parameters(), self.cfg.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        p.rows += size
        p.tokens += size * self.data.seq_len
        record = {"step": p.step, "tokens": p.tokens, "loss": self._mean_over_workers(loss.detach()), "lr": lr, "batch": size}
        p.history.append(record)
        return record

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _mean_over_workers(self, value: torch.Tensor) -> float:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            value = value.clone()
            torch.distributed.all_reduce(value)
            value /= torch.distributed.get_world_size()
        return float(value)

    def run(self, *, until_step: int | None = None,
            on_checkpoint: Callable[[PhaseTrainer, bool], None] | None = None) -> None:
        """Train to the end of the phase (or `until_step`), calling back every checkpoint_every steps."""
        start, start_tokens = time.perf_counter(), self.progress.tokens
        every = self.cfg.train.checkpoint_every
        while not self.done and (until_step is None or self.progress.step < until_step):
            record = self.train_step()
            rate = (self.progress.tokens - start_tokens) / (time.perf_counter() - start)
            self.tokens_per_second = rate
            if self.rank == 0 and (record["step"] % self.cfg.train.log_every == 0 or self.done):
                log.info("%s step %d/%d | tokens %d/%d | loss %.4f | lr %.2e | batch %d | %.0f tok/s",
                         self.name, record["step"], self.total_steps, record["tokens"], self.phase.data.tokens,
                         record["loss"], record["lr"], record["batch"], rate)
            if on_checkpoint and (record["step"] % every == 0 or self.done):
                on_checkpoint(self, self.done)

    def save(self, folder: Path) -> None:
        """An HF checkpoint (tokenizer included) in model/, the resume state in state/."""
        self.model.save_pretrained(folder / "model")
        self.tokenizer.save_pretrained(str(folder / "model"))
        save_state(folder / "state", self.optimizer, self.progress)

    def restore(self, folder: Path) -> None:
        from safetensors.torch import load_file

        weights = load_file(str(folder / "model" / "model.safetensors"))
        result = self.model.load_state_dict(weights, strict=False)
        # The decoder weight is tied to the embeddings and not stored separately.
        missing = [k for k in result.missing_keys if k != "decoder.weight"]
        if missing or result.unexpected_keys:
            raise ValueError(f"{folder}: checkpoint does not match the model: missing {missing}, "
                             f"unexpected {result.unexpected_keys}")
        self.model.tie_weights()
        self.progress = load_state(folder / "state", self.optimizer)
