"""The unpadded forward path of ModernBERT: the tokens of a batch are one flat sequence, every
linear layer runs on real tokens only, and attention runs per document (`cu_seqlens`), also
inside packed rows, so documents never attend to each other.

It runs the modules of a transformers `ModernBertForMaskedLM` (the same parameters, names and
config), so a checkpoint trained through it loads in `AutoModelForMaskedLM` unchanged and any
transformers ModernBERT checkpoint runs in it. Local layers attend within
`local_attention // 2` tokens each side (transformers' and the official window), global
layers to the whole document; RoPE positions restart at every document.

Attention backends (`attention`): 'varlen' is torch's built-in FlashAttention varlen
(`torch.nn.attention.varlen.varlen_attn`, CUDA), 'flash_attn' the flash-attn package's
`flash_attn_varlen_func` (CUDA), 'sdpa' the CPU-capable fallback: documents become the rows of
a padded batch for attention only, with a boolean band mask, under SDPA (supports backward).
'auto' takes varlen on CUDA where it exists, else sdpa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

Backend = Literal["auto", "varlen", "flash_attn", "sdpa"]


@dataclass(frozen=True)
class Documents:
    """Where each document lies in the flat token sequence."""

    cu_seqlens: torch.Tensor  # int32 [documents + 1]: 0, end of document 1, ...
    max_seqlen: int
    positions: torch.Tensor  # int64 [tokens]: index within its document
    # what backends derive from the layout once per forward pass (e.g. sdpa's length buckets)
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_cu_seqlens(cls, cu_seqlens: torch.Tensor) -> Documents:
        cu = cu_seqlens.to(torch.int32)
        lengths = (cu[1:] - cu[:-1]).long()
        starts = torch.repeat_interleave(cu[:-1].long(), lengths)
        positions = torch.arange(int(cu[-1]), device=cu.device) - starts
        return cls(cu, int(lengths.max()) if len(lengths) else 0, positions)

    @classmethod
    def from_attention_mask(cls, attention_mask: torch.Tensor) -> tuple[Documents, torch.Tensor]:
        """A padded batch's rows as documents, and the flat indices of its real tokens."""
        lengths = attention_mask.sum(dim=1, dtype=torch.int32)
        cu = F.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
        return cls.from_cu_seqlens(cu), torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()

    @classmethod
    def from_packed_rows(cls, seq_len: int, row_cu_seqlens: Sequence[Any]) -> tuple[Documents, torch.Tensor]:
        """The documents of packed rows (each row's `cu_seqlens` as the mix stage writes them,
        its padding after the last document), and the flat indices of their real tokens in
        the [rows, seq_len] batch."""
        starts, ends, bounds, offset = [], [], [0], 0
        for row, cu in enumerate(row_cu_seqlens):
            cu = torch.as_tensor(cu, dtype=torch.int64)
            if len(cu) < 2 or int(cu[0]) != 0 or bool((cu[1:] < cu[:-1]).any()) or int(cu[-1]) > seq_len:
                raise ValueError(f"row {row}: cu_seqlens {cu.tolist()} must rise from 0 to at most {seq_len}")
            bounds.extend((cu[1:] + offset).tolist())
            starts.append(row * seq_len)
            ends.append(row * seq_len + int(cu[-1]))
            offset += int(cu[-1])
        real = torch.cat([torch.arange(a, b) for a, b in zip(starts, ends)]) if starts else torch.empty(0, dtype=torch.long)
        return cls.from_cu_seqlens(torch.tensor(bounds, dtype=torch.int32)), real


def pick_backend(requested: Backend, device: torch.device) -> str:
    if requested != "auto":
        if requested in ("varlen", "flash_attn") and device.type != "cuda":
            raise ValueError(f"attention backend {requested!r} needs a CUDA device, not {device.type}")
        return requested
    if device.type == "cuda":
        try:
            from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        except ImportError:
            return "sdpa"
        return "varlen"
    return "sdpa"


def _window(module: Any) -> int | None:
    """Tokens each side a layer may attend to; None for global attention."""
    sliding = getattr(module, "sliding_window", None)
    return None if sliding is None else sliding - 1  # transformers stores the flash (inclusive + 1) form


@dataclass(frozen=True)
class _Bucket:
    """Documents of similar length, laid out as the rows of one padded grid [n, width]."""

    gather: torch.Tensor  # [n * width]: the token in each slot of the grid, `tokens` (a zero row) for padding
    n: int
    width: int
    valid: torch.Tensor | None  # [n, 1, 1, width], None where every document fills the width


def _buckets(docs: Documents) -> list[_Bucket]:
    """Documents grouped by length (powers of two, the shortest up to 16 together), so that a
    grid wastes at most about half its width on padding, whatever the mix of lengths; and
    where each token's output lies in the buckets' results, one after the other. Cached on
    `docs`: every layer of a forward pass shares them."""
    if "buckets" in docs.cache:
        return docs.cache["buckets"]
    device = docs.cu_seqlens.device
    cu = docs.cu_seqlens.cpu().long()
    lengths = cu[1:] - cu[:-1]
    total = int(cu[-1])
    keys = torch.log2(lengths.clamp(min=1).double()).ceil().clamp(min=4).long()
    buckets, output_of, offset = [], torch.empty(total, dtype=torch.long), 0
    for key in keys.unique().tolist():
        members = torch.nonzero(keys == key).flatten()
        lens = lengths[members]
        n, width = len(members), int(lens.max())
        within = torch.arange(int(lens.sum())) - torch.repeat_interleave(F.pad(lens.cumsum(0), (1, 0))[:-1], lens)
        tokens = torch.repeat_interleave(cu[:-1][members], lens) + within
        slots = torch.repeat_interleave(torch.arange(n), lens) * width + within
        gather = torch.full((n * width,), total, dtype=torch.long)
        gather[slots] = tokens
        output_of[tokens] = offset + slots
        offset += n * width
        valid = None if bool((lens == width).all()) else (torch.arange(width)[None, :] < lens[:, None])
        buckets.append(_Bucket(gather.to(device), n, width,
                               None if valid is None else valid.view(n, 1, 1, width).to(device)))
    docs.cache["buckets"] = buckets
    docs.cache["output_of"] = output_of.to(device)
    return buckets


def _bucket_mask(bucket: _Bucket, window: int | None) -> torch.Tensor | None:
    """Keys each query may see: real ones, within `window` each side for a local layer."""
    if window is None or window >= bucket.width - 1:
        return bucket.valid
    pos = torch.arange(bucket.width, device=bucket.gather.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window
    if bucket.valid is None:
        return band
    # a padding query beyond the window of every real key would have no key at all (NaN);
    # it sees everything instead, and its output is dropped
    return (bucket.valid & band) | ~bucket.valid.transpose(-1, -2)


# Local attention in slices of SLICE_WINDOWS windows of queries, each against its slice of keys
# widened by the window each side, in grids at least SLICED_FROM windows wide: fewer pairs than
# one band-masked grid, few enough calls to pay off. Measured on a CPU (benchmarks/README.md):
# even with the band at 512 tokens, +4-11 % at 1024, and faster than blocks of one window
# against their neighbours (an unfold of keys and values) at 2048 and 4096.
SLICED_FROM = 6
SLICE_WINDOWS = 2


def _slices(width: int, window: int) -> list[tuple[int, int, int, int]]:
    """(query start, query end, key start, key end) of each slice of a grid `width` wide."""
    step = SLICE_WINDOWS * window
    return [(a, min(width, a + step), max(0, a - window), min(width, a + step + window))
            for a in range(0, width, step)]


def _slice_masks(bucket: _Bucket, window: int) -> list[torch.Tensor]:
    """Per slice [n, 1, queries, keys]: keys within the window and the document; a padding
    query sees every key of its slice, to stay defined, and its output is dropped."""
    device = bucket.gather.device
    lengths = (bucket.valid.flatten(1).sum(1) if bucket.valid is not None
               else torch.full((bucket.n,), bucket.width, device=device))[:, None, None, None]
    masks = []
    for qa, qb, ka, kb in _slices(bucket.width, window):
        query = torch.arange(qa, qb, device=device)[:, None]
        key = torch.arange(ka, kb, device=device)[None, :]
        masks.append((((query - key).abs() <= window) & (key < lengths)) | (query >= lengths))
    return masks


def _sliced_local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, masks: list[torch.Tensor],
                            window: int, dropout: float) -> torch.Tensor:
    outs = [F.scaled_dot_product_attention(q[:, :, qa:qb], k[:, :, ka:kb], v[:, :, ka:kb], attn_mask=mask,
                                           dropout_p=dropout)
            for (qa, qb, ka, kb), mask in zip(_slices(q.shape[2], window), masks)]
    return torch.cat(outs, dim=2)


def _sliced(bucket: _Bucket, window: int | None) -> bool:
    return window is not None and bucket.width >= SLICED_FROM * window


def _mask(docs: Documents, index: int, bucket: _Bucket, window: int | None, sliced: bool) -> Any:
    key = f"mask:{index}:{window}:{'sliced' if sliced else 'band'}"
    if key not in docs.cache:
        docs.cache[key] = _slice_masks(bucket, window) if sliced else _bucket_mask(bucket, window)  # type: ignore[arg-type]
    return docs.cache[key]


def sdpa_attention(qkv: torch.Tensor, docs: Documents, window: int | None, dropout: float) -> torch.Tensor:
    """[tokens, 3, heads, dim] in, [tokens, heads, dim] out: the documents of each length bucket
    the rows of a padded grid for SDPA (one gather per bucket), masked to real keys and the
    layer's window; local layers in wide grids attend slice by slice. Supports backward."""
    buckets = _buckets(docs)
    # documents of one length, in order: the tokens are the grid already (no copy either way)
    as_is = len(buckets) == 1 and buckets[0].valid is None
    source = qkv if as_is else torch.cat([qkv, qkv.new_zeros(1, *qkv.shape[1:])])  # last row: padding
    results = []
    for index, bucket in enumerate(buckets):
        rows = source if as_is else source.index_select(0, bucket.gather)
        grid = rows.view(bucket.n, bucket.width, *qkv.shape[1:]).permute(2, 0, 3, 1, 4)
        q, k, v = grid.unbind(0)  # [n, heads, width, dim] each
        sliced = _sliced(bucket, window)
        mask = _mask(docs, index, bucket, window, sliced)
        if sliced:
            out = _sliced_local_attention(q, k, v, mask, window, dropout)  # type: ignore[arg-type]
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        results.append(out.transpose(1, 2).reshape(bucket.n * bucket.width, *qkv.shape[2:]))
    if as_is:
        return results[0]
    return (torch.cat(results) if len(results) > 1 else results[0]).index_select(0, docs.cache["output_of"])


def varlen_attention(qkv: torch.Tensor, docs: Documents, window: int | None, dropout: float) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = qkv.unbind(dim=1)
    if dropout:
        raise ValueError("the varlen backend has no attention-probability dropout (official: 0)")
    size = (-1, -1) if window is None else (window, window)
    return varlen_attn(q, k, v, docs.cu_seqlens, docs.cu_seqlens, docs.max_seqlen, docs.max_seqlen,
                       window_size=size)


def flash_attn_attention(qkv: torch.Tensor, docs: Documents, window: int | None, dropout: float) -> torch.Tensor:
    from flash_attn import flash_attn_varlen_func

    q, k, v = qkv.unbind(dim=1)
    size = (-1, -1) if window is None else (window, window)
    return flash_attn_varlen_func(q, k, v, docs.cu_seqlens, docs.cu_seqlens, docs.max_seqlen, docs.max_seqlen,
                                  dropout_p=dropout, window_size=size)


ATTENTION = {"sdpa": sdpa_attention, "varlen": varlen_attention, "flash_attn": flash_attn_attention}


def _rope(rotary: Any, layer_type: str, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors [tokens, 3, 1, dim] that rotate q and k (and leave v as it is) in one pass over
    the fused qkv: qkv * cos + qkv.roll(dim / 2) * sin, the sine's first half negated, which is
    transformers' x * cos + rotate_half(x) * sin."""
    inv_freq = getattr(rotary, f"{layer_type}_inv_freq").to(positions.device, torch.float32)
    freqs = positions[:, None].float() * inv_freq
    scale = getattr(rotary, f"{layer_type}_attention_scaling")
    cos, sin = (freqs.cos() * scale).repeat(1, 2), freqs.sin() * scale
    sin = torch.cat((-sin, sin), dim=-1)
    ones, zeros = torch.ones_like(cos), torch.zeros_like(sin)
    return torch.stack((cos, cos, ones), dim=1)[:, :, None], torch.stack((sin, sin, zeros), dim=1)[:, :, None]


def _attention_block(layer: Any, hidden: torch.Tensor, docs: Documents, rope: tuple[torch.Tensor, ...],
                     backend: str, probs_dropout: float | None) -> torch.Tensor:
    attn = layer.attn
    heads, dim = attn.config.num_attention_heads, attn.head_dim
    qkv = attn.Wqkv(layer.attn_norm(hidden)).view(-1, 3, heads, dim)
    cos, sin = rope
    qkv = (qkv * cos + qkv.roll(dim // 2, dims=-1) * sin).to(qkv.dtype)  # RoPE on q and k
    if probs_dropout is None:  # the module's own rate (the official split sets it to 0)
        probs_dropout = float(getattr(attn, "attention_dropout", 0.0))
    out = ATTENTION[backend](qkv, docs, _window(attn), probs_dropout if attn.training else 0.0)
    return attn.out_drop(attn.Wo(out.reshape(-1, heads * dim)))


def encode(model: Any, input_ids: torch.Tensor, docs: Documents, backend: Backend = "auto",
           probs_dropout: float | None = None) -> torch.Tensor:
    """Final hidden states [tokens, hidden] of a transformers ModernBertForMaskedLM (or
    ModernBertModel) for flat `input_ids` [tokens] laid out as `docs`. Dropout on attention
    probabilities is `probs_dropout`, or each attention module's own rate where None; the
    attention output's dropout is the module's `out_drop`."""
    base = getattr(model, "model", model)
    chosen = pick_backend(backend, input_ids.device)
    hidden = base.embeddings(input_ids=input_ids[None])[0]
    ropes: dict[str, tuple[torch.Tensor, ...]] = {}
    for layer in base.layers:
        kind = layer.attention_type
        if kind not in ropes:
            ropes[kind] = _rope(base.rotary_emb, kind, docs.positions)
        hidden = hidden + _attention_block(layer, hidden, docs, ropes[kind], chosen, probs_dropout)
        hidden = hidden + layer.mlp(layer.mlp_norm(hidden))
    return base.final_norm(hidden)


def masked_lm_logits(model: Any, input_ids: torch.Tensor, docs: Documents, backend: Backend = "auto",
                     only: torch.Tensor | None = None) -> torch.Tensor:
    """MLM logits of a ModernBertForMaskedLM on the flat tokens (or only at the indices `only`,
    as the official sparse prediction: the head and decoder run on masked tokens alone)."""
    hidden = encode(model, input_ids, docs, backend)
    if only is not None:
        hidden = hidden[only]
    return model.decoder(model.head(hidden))
