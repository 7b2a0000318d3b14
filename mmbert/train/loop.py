"""One training phase, independent of Ray: the same object runs inside a Ray Train worker
(DDP over gloo or nccl) and in-process in unit tests (one worker, no process group)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmbert.config import PhaseConfig, PipelineConfig
from mmbert.losses import DocumentMaskedLMLoss, MaskedLMLoss
from mmbert.masking import IGNORE_INDEX, mask_tokens
from mmbert.modeling import build_config, compile_blocks, load_model, new_model
from mmbert.schedules import batch_size_at, phase_lr_at, phase_steps
from mmbert.seeding import Stream, derive_seed
from mmbert.tokenizer import load_tokenizer, special_ids
from mmbert.train.data import PackedShards
from mmbert.train.optim import applied_weight_decay, build_optimizer, set_lr
from mmbert.train.state import Progress, load_state, save_state, write_manifest
from mmbert.unpadded import Documents

log = logging.getLogger("mmbert.train")


@dataclass(frozen=True)
class PhasePaths:
    mix: str
    tokenizer: str
    init_model: str | None  # the previous phase's HF checkpoint, None to start from scratch


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
        torch.set_num_threads(cfg.runtime.torch_threads)
        self.tokenizer = load_tokenizer(paths.tokenizer)
        self.ids = special_ids(self.tokenizer)
        remote = f"{cfg.runtime.mix_remote.rstrip('/')}/{phase}" if cfg.runtime.mix_remote else None
        self.data = PackedShards(paths.mix, remote=remote, cache=cfg.runtime.data_cache,
                                 block_rows=cfg.train.shuffle_block_rows)
        self.model = self._build_model(paths, len(self.tokenizer))
        if cfg.train.compile:
            compile_blocks(self.model)
        self.unpadded = cfg.train.attn_implementation == "unpadded"
        loss: torch.nn.Module = (DocumentMaskedLMLoss(self.model, cfg.train.attention_backend)
                                 if self.unpadded else MaskedLMLoss(self.model))
        self.loss_model = wrap(loss) if wrap else loss
        self.optimizer = build_optimizer(self.model, self.phase, cfg.train.optimizer)
        self.progress = Progress()
        self.total_steps = len(phase_steps(self.phase, world))
        self.tokens_per_second = 0.0  # global tokens per wall-clock second of this run

    def _build_model(self, paths: PhasePaths, vocab_size: int) -> torch.nn.Module:
        padded = self.cfg.train.attn_implementation
        # the unpadded path runs the model's modules itself; transformers' own attention (held
        # out, evaluation) stays sdpa
        kwargs = dict(rope_theta_global=self.phase.rope_theta_global, rope_theta_local=self.phase.rope_theta_local,
                      attn_implementation="sdpa" if padded == "unpadded" else padded)
        if paths.init_model:
            return load_model(paths.init_model, sparse_prediction=True, dropout=self.cfg.model, **kwargs)
        config = build_config(self.cfg.model, vocab_size, special=self.ids, sparse_prediction=True, **kwargs)
        return new_model(config, seed=derive_seed(self.cfg.seed, Stream.INIT), dropout=self.cfg.model)

    @property
    def done(self) -> bool:
        return self.progress.tokens >= self.phase.data.tokens

    def _masked_share(self, size: int) -> tuple[torch.Tensor, torch.Tensor, list[Any], int]:
        """This worker's rows of the step's global batch, masked with the step's own seed, each
        row's document boundaries, and how many of its tokens could have been masked (not
        special, not padding)."""
        p = self.progress
        batch, documents = self.data.batch_with_documents(p.rows, size, self.rank, self.world, self.cfg.seed)
        rows = torch.from_numpy(batch)
        seed = derive_seed(self.cfg.seed, Stream.MASKING, self.rank, p.step)
        inputs, labels = mask_tokens(rows, self.phase.mask_rate, mask_id=self.ids.mask, special_ids=self.ids.all(),
                                     vocab_size=self.model.config.vocab_size,
                                     generator=torch.Generator().manual_seed(seed))
        eligible = int(torch.isin(rows, torch.tensor(self.ids.all(), dtype=rows.dtype), invert=True).sum())
        return inputs, labels, documents, eligible

    def train_step(self) -> dict[str, float]:
        p = self.progress
        size = batch_size_at(p.tokens, self.phase.batch, self.world)
        lr = phase_lr_at(p.tokens, self.phase.lr, self.phase.data.tokens)
        set_lr(self.optimizer, lr)
        inputs, labels, documents, eligible = self._masked_share(size)
        counts = self._sum_over_workers(torch.tensor([float((labels != IGNORE_INDEX).sum()), float(eligible)]))
        masked_total = max(1.0, float(counts[0]))
        torch.manual_seed(derive_seed(self.cfg.seed, Stream.DROPOUT, self.rank, p.step))
        self.loss_model.train()
        loss_sum = self._accumulate(inputs, labels, documents, scale=self.world / masked_total)
        if self.cfg.train.optimizer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.optimizer.grad_clip)
        decay = applied_weight_decay(self.optimizer)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        p.rows += size
        p.tokens += size * self.data.seq_len
        loss = float(self._sum_over_workers(torch.tensor([loss_sum]))[0]) / masked_total
        record = {"step": p.step, "tokens": p.tokens, "loss": loss, "lr": lr, "batch": size,
                  "mask_rate": float(counts[0] / counts[1]), "weight_decay": decay}
        p.history.append(record)
        return record

    def _accumulate(self, inputs: torch.Tensor, labels: torch.Tensor, documents: list[Any], scale: float) -> float:
        """Forward and backward in micro-batches; gradients sync across workers once, at the last."""
        micro = self.phase.batch.micro_batch_size
        starts = range(0, len(inputs), micro)
        total = 0.0
        bf16 = self.cfg.train.precision == "bf16"
        for start in starts:
            defer_sync = start != starts[-1] and hasattr(self.loss_model, "no_sync")
            part = slice(start, start + micro)
            with self.loss_model.no_sync() if defer_sync else nullcontext():
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = self.loss_model(**self._micro_inputs(inputs[part], labels[part], documents[part]))
                (loss * scale).backward()
            total += float(loss.detach())
        return total

    def _micro_inputs(self, inputs: torch.Tensor, labels: torch.Tensor, documents: list[Any]) -> dict[str, torch.Tensor]:
        """A micro-batch as its loss module takes it: the real tokens, flat, and their documents
        (unpadded), or the padded rows and their attention mask."""
        if self.unpadded:
            docs, real = Documents.from_packed_rows(inputs.shape[1], documents)
            return {"input_ids": inputs.flatten()[real].to(self.device), "cu_seqlens": docs.cu_seqlens.to(self.device),
                    "labels": labels.flatten()[real].to(self.device)}
        x = inputs.to(self.device)
        return {"input_ids": x, "attention_mask": (x != self.ids.pad).long(), "labels": labels.to(self.device)}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _sum_over_workers(self, value: torch.Tensor) -> torch.Tensor:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            value = value.to(self.device)
            torch.distributed.all_reduce(value)
        return value.cpu()

    def run(self, *, until_step: int | None = None,
            on_checkpoint: Callable[[PhaseTrainer, bool], None] | None = None,
            on_log: Callable[[dict[str, float]], None] | None = None) -> None:
        """Train to the end of the phase (or `until_step`), calling back every checkpoint_every
        steps and at the end (also when a resumed run had nothing left to do); rank 0 calls
        `on_log` with each step it logs."""
        start, start_tokens = time.perf_counter(), self.progress.tokens
        every = self.cfg.runtime.checkpoint_every
        saved_at = None
        while not self.done and (until_step is None or self.progress.step < until_step):
            record = self.train_step()
            self.tokens_per_second = (self.progress.tokens - start_tokens) / (time.perf_counter() - start)
            if self.rank == 0 and (record["step"] % self.cfg.runtime.log_every == 0 or self.done):
                log.info("%s step %d/%d | tokens %d/%d | loss %.4f | lr %.2e | batch %d | %.0f tok/s",
                         self.name, record["step"], self.total_steps, record["tokens"], self.phase.data.tokens,
                         record["loss"], record["lr"], record["batch"], self.tokens_per_second)
                if on_log:
                    on_log(record)
            if on_checkpoint and (record["step"] % every == 0 or self.done):
                on_checkpoint(self, self.done)
                saved_at = self.progress.step
        if on_checkpoint and self.done and saved_at != self.progress.step:
            on_checkpoint(self, True)

    def save(self, folder: Path) -> None:
        """An HF checkpoint (tokenizer included) in model/, the resume state in state/."""
        self.model.save_pretrained(folder / "model")
        self.tokenizer.save_pretrained(str(folder / "model"))
        save_state(folder / "state", self.optimizer, self.progress)
        write_manifest(folder)

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
