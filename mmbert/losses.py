"""The masked-LM training loss, through transformers' padded model or the unpadded path.

Its own module (torch, masking and the unpadded path only) so that a benchmark can run a
training step on a machine without the pipeline's data stack (benchmarks/gpu_check.py)."""

from __future__ import annotations

import torch

from mmbert.masking import IGNORE_INDEX
from mmbert.unpadded import Backend, Documents, encode


def _summed_masked_ce(mlm: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    selected = labels != IGNORE_INDEX
    logits = mlm.decoder(mlm.head(hidden[selected]))
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")


class MaskedLMLoss(torch.nn.Module):
    """Summed cross-entropy over the masked positions only (decoding just those, as
    ModernBERT's sparse prediction does), through transformers' padded model: the documents
    of a packed row attend to each other. A sum, so that micro-batches and workers can be
    normalised by the global count of masked tokens: the gradient is exactly that of the
    mean over the whole global batch, however it is split."""

    def __init__(self, mlm: torch.nn.Module) -> None:
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.mlm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return _summed_masked_ce(self.mlm, hidden, labels)


class DocumentMaskedLMLoss(torch.nn.Module):
    """`MaskedLMLoss` through the unpadded path: the micro-batch's real tokens as one flat
    sequence, attention within each document (`cu_seqlens`), as the official runs."""

    def __init__(self, mlm: torch.nn.Module, backend: Backend) -> None:
        super().__init__()
        self.mlm, self.backend = mlm, backend

    def forward(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # the backend is resolved by encode, on the device and precision of this call (Ray Train
        # moves the model to its device after this module is built)
        hidden = encode(self.mlm, input_ids, Documents.from_cu_seqlens(cu_seqlens), self.backend)
        return _summed_masked_ce(self.mlm, hidden, labels)
