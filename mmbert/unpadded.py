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
`flash_attn_varlen_func` (CUDA), 'sdpa' the CPU-capable fallback under SDPA (supports
backward): a long document attends alone, as a view of its tokens; shorter ones become the
rows of padded grids of similar lengths (narrow grids through SDPA's math kernel, which beats
the flash kernel on short rows on a CPU); boolean masks keep keys real and within the window.
'auto' takes varlen on CUDA for fp16/bf16 inputs (FlashAttention takes no float32), else sdpa.

Around attention the path avoids the copies that cost a CPU a third of its time: RoPE is one
complex multiply (Wqkv's rows paired, see `_pair_order`; in place at inference), residual
sums happen in the matrix multiply, and at inference large outputs go to buffers every layer
reuses.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

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


HALF = (torch.float16, torch.bfloat16)


def pick_backend(requested: Backend, device: torch.device, dtype: torch.dtype) -> str:
    """The backend for attention inputs of `dtype` on `device`. The FlashAttention kernels
    (varlen, flash_attn) need CUDA and fp16/bf16: 'auto' takes sdpa elsewhere, and asking for
    them there is an error."""
    if requested != "auto":
        if requested in ("varlen", "flash_attn"):
            if device.type != "cuda":
                raise ValueError(f"attention backend {requested!r} needs a CUDA device, not {device.type}")
            if dtype not in HALF:
                raise ValueError(f"attention backend {requested!r} takes fp16/bf16 (bf16 autocast or a half "
                                 f"model), not {dtype}")
        return requested
    if device.type == "cuda" and dtype in HALF:
        try:
            from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        except ImportError:
            return "sdpa"
        return "varlen"
    return "sdpa"


def _attention_dtype(model: Any, device: torch.device) -> torch.dtype:
    """What q, k and v will be: autocast's dtype where it is on, else the weights'."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(model.parameters()).dtype


def _window(module: Any) -> int | None:
    """Tokens each side a layer may attend to; None for global attention."""
    sliding = getattr(module, "sliding_window", None)
    return None if sliding is None else sliding - 1  # transformers stores the flash (inclusive + 1) form


@dataclass(frozen=True)
class _Bucket:
    """Documents laid out as the rows of one grid [n, width] for attention: either a run of
    whole documents of exactly `width` tokens that lie one after the other from token `start`
    (the tokens are the grid already, no copy), or (`padded`) documents of similar length in
    a padded grid, from row `start` of the gathered grids of a pass."""

    n: int
    width: int
    start: int
    padded: bool = False
    valid: torch.Tensor | None = None  # [n, 1, 1, width], None where every document fills the width


# A document of at least this many tokens attends alone, as a view of its tokens: no padding,
# no gather, and no mask in a global layer. Below it, the call's fixed cost outweighs the
# padding a shared grid wastes (the embedded model's rows hold ~9 documents of ~14 tokens).
ALONE_FROM = 128
# The shortest documents share a grid this wide; then one grid per power of two. Measured on
# the embedded mix's rows (training, 2 threads, against the padded model): 16 0.91x, 8 0.86x,
# 32 0.83x, 64 0.67x, grids per half power of two 0.88x.
SHORTEST_GRID = 16


def _contiguous(cu: torch.Tensor, lengths: torch.Tensor) -> tuple[list[_Bucket], torch.Tensor]:
    """Every document as one grid where all are equally long, else each document of
    ALONE_FROM tokens or more as its own grid of one row; and which documents they hold."""
    if len(lengths) and bool((lengths == lengths[0]).all()):
        return [_Bucket(len(lengths), int(lengths[0]), 0)], torch.ones_like(lengths, dtype=torch.bool)
    alone = lengths >= ALONE_FROM
    return [_Bucket(1, int(lengths[d]), int(cu[d])) for d in torch.nonzero(alone).flatten().tolist()], alone


def _padded(cu: torch.Tensor, lengths: torch.Tensor, members: torch.Tensor, start: int,
            device: torch.device) -> tuple[_Bucket, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The documents `members` as one padded grid from row `start` of the gathered grids; the
    token in each of its slots (padding repeats token 0: masked out as a key, and dropped as
    a query); and where the documents' tokens lie in it."""
    lens = lengths[members]
    n, width = len(members), int(lens.max())
    within = torch.arange(int(lens.sum())) - torch.repeat_interleave(F.pad(lens.cumsum(0), (1, 0))[:-1], lens)
    tokens = torch.repeat_interleave(cu[:-1][members], lens) + within
    slots = torch.repeat_interleave(torch.arange(n), lens) * width + within
    gather = torch.zeros(n * width, dtype=torch.long)
    gather[slots] = tokens
    valid = None if bool((lens == width).all()) else (torch.arange(width)[None, :] < lens[:, None]).view(n, 1, 1, width)
    return _Bucket(n, width, start, True, None if valid is None else valid.to(device)), gather, tokens, slots


def _buckets(docs: Documents) -> list[_Bucket]:
    """Long documents alone (ALONE_FROM), the others grouped by length (powers of two, the
    shortest up to SHORTEST_GRID together), so that a grid wastes at most about half its width on
    padding, whatever the mix of lengths. Cached on `docs` (every layer of a forward pass
    shares them) with `gather`, the tokens of all padded grids (one gather a layer, and one
    gradient buffer), and `output_of`, where each token's output lies in the buckets' results
    one after the other (None where that is the tokens' own order)."""
    if "buckets" in docs.cache:
        return docs.cache["buckets"]
    device = docs.cu_seqlens.device
    cu = docs.cu_seqlens.cpu().long()
    lengths = cu[1:] - cu[:-1]
    buckets, covered = _contiguous(cu, lengths)
    output_of, offset = torch.empty(int(cu[-1]), dtype=torch.long), 0
    for bucket in buckets:
        output_of[bucket.start : bucket.start + bucket.n * bucket.width] = torch.arange(offset, offset + bucket.n * bucket.width)
        offset += bucket.n * bucket.width
    short = ~covered & (lengths > 0)  # an empty document has nothing to attend
    in_order = not bool(short.any())  # contiguous grids come in token order
    keys = torch.log2(lengths.clamp(min=1).double()).ceil().clamp(min=math.log2(SHORTEST_GRID)).long()
    gathers: list[torch.Tensor] = []
    for key in keys[short].unique().tolist():
        members = torch.nonzero(short & (keys == key)).flatten()
        bucket, gather, tokens, slots = _padded(cu, lengths, members, sum(len(g) for g in gathers), device)
        buckets.append(bucket)
        gathers.append(gather)
        output_of[tokens] = offset + slots
        offset += bucket.n * bucket.width
    docs.cache["buckets"] = buckets
    docs.cache["gather"] = torch.cat(gathers).to(device) if gathers else None
    docs.cache["output_of"] = None if in_order else output_of.to(device)
    return buckets


def _bucket_mask(bucket: _Bucket, window: int | None, device: torch.device) -> torch.Tensor | None:
    """Keys each query may see: real ones, within `window` each side for a local layer."""
    if window is None or window >= bucket.width - 1:
        return bucket.valid
    pos = torch.arange(bucket.width, device=device)
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


def _slice_masks(bucket: _Bucket, window: int, device: torch.device) -> list[torch.Tensor]:
    """Per slice [n, 1, queries, keys]: keys within the window and the document; a padding
    query sees every key of its slice, to stay defined, and its output is dropped."""
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


def _mask(docs: Documents, bucket: _Bucket, window: int | None, sliced: bool) -> Any:
    """The bucket's mask for `window`, built once per forward pass; grids without padding of
    one shape share theirs."""
    grid = f"padded{bucket.start}" if bucket.valid is not None else f"{bucket.n}x{bucket.width}"
    key = f"mask:{grid}:{window}:{'sliced' if sliced else 'band'}"
    if key not in docs.cache:
        device = docs.cu_seqlens.device
        docs.cache[key] = (_slice_masks(bucket, window, device) if sliced  # type: ignore[arg-type]
                           else _bucket_mask(bucket, window, device))
    return docs.cache[key]


# Grids narrower than this attend through SDPA's math kernel on a CPU: on short rows its
# batched matrix multiplies beat the flash kernel's blocked loop; at exactly 32 flash catches
# up, and at inference it stays ahead from there on. Math's time over flash's
# (`benchmarks/attention_kernels.py`, 2 threads, forward + backward / forward alone): width 16
# 0.5-0.8 / 0.65-0.7, width 28 0.73-0.88 / 0.87-0.91, width 32 0.86-1.03 / 1.08-1.24.
MATH_BELOW = 32


def _kernel(bucket: _Bucket, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cpu" and bucket.width < MATH_BELOW:
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def _split(source: torch.Tensor, spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Rows [start, start + size) of `source` for each of the ordered, disjoint `spans`, by one
    split: its backward is one cat, where a narrow per span would fill a zero gradient the
    size of `source` for each."""
    sizes, keep, at = [], [], 0
    for start, size in spans:
        if start > at:
            sizes.append(start - at)
            keep.append(False)
        sizes.append(size)
        keep.append(True)
        at = start + size
    if at < len(source):
        sizes.append(len(source) - at)
        keep.append(False)
    return [piece for piece, kept in zip(source.split(sizes), keep) if kept]


def _grid_rows(qkv: torch.Tensor, gathered: torch.Tensor | None, buckets: list[_Bucket]) -> list[torch.Tensor]:
    """Each bucket's rows: its tokens in `qkv`, or its part of the gathered padded grids."""
    runs = iter(_split(qkv, [(b.start, b.n * b.width) for b in buckets if not b.padded]))
    grids = iter([] if gathered is None else _split(gathered, [(b.start, b.n * b.width) for b in buckets if b.padded]))
    return [next(grids if bucket.padded else runs) for bucket in buckets]


def sdpa_attention(qkv: torch.Tensor, docs: Documents, window: int | None, dropout: float) -> torch.Tensor:
    """[tokens, 3, heads, dim] in, [tokens, heads, dim] out: each bucket's documents the rows
    of a grid for SDPA (a view of the tokens, or one gather into a padded grid), masked to
    real keys and the layer's window; local layers in wide grids attend slice by slice.
    Supports backward."""
    buckets = _buckets(docs)
    gathered = None if docs.cache["gather"] is None else qkv.index_select(0, docs.cache["gather"])
    results = []
    for bucket, rows in zip(buckets, _grid_rows(qkv, gathered, buckets)):
        size = bucket.n * bucket.width
        # unbound along the q/k/v axis of the token layout: their gradients stack back into it
        q, k, v = (t.transpose(1, 2) for t in rows.view(bucket.n, bucket.width, *qkv.shape[1:]).unbind(2))
        sliced = _sliced(bucket, window)
        mask = _mask(docs, bucket, window, sliced)
        if sliced:
            out = _sliced_local_attention(q, k, v, mask, window, dropout)  # type: ignore[arg-type]
        else:
            with _kernel(bucket, qkv.device):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        results.append(out.transpose(1, 2).reshape(size, *qkv.shape[2:]))
    joined = torch.cat(results) if len(results) > 1 else results[0]
    order = docs.cache["output_of"]
    return joined if order is None else joined.index_select(0, order)


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


@functools.lru_cache(maxsize=16)
def _pair_order(heads: int, dim: int, device: torch.device) -> torch.Tensor:
    """Rows of Wqkv reordered so that each head's query and key dimensions j and dim/2 + j lie
    side by side (value rows unchanged). A query and a key permuted alike have the same dot
    product, so attention is unchanged, and RoPE's rotate-half pairs become adjacent: one
    complex multiply per pair, in place. Cached, so built outside inference mode: an inference
    tensor would fail a later training pass of the same process."""
    with torch.inference_mode(False):
        half = torch.arange(dim // 2, device=device)
        within = torch.stack((half, half + dim // 2), dim=1).flatten()  # 0, dim/2, 1, dim/2 + 1, ...
        heads_at = torch.arange(2 * heads, device=device)[:, None] * dim
        return torch.cat(((heads_at + within).flatten(), torch.arange(2 * heads * dim, 3 * heads * dim, device=device)))


def _rope(rotary: Any, layer_type: str, positions: torch.Tensor) -> torch.Tensor:
    """Per token [tokens, 1, 1, dim / 2], complex: (x_j + i x_{dim/2+j}) times this is
    transformers' x * cos + rotate_half(x) * sin, attention scaling included."""
    inv_freq = getattr(rotary, f"{layer_type}_inv_freq").to(positions.device, torch.float32)
    freqs = positions[:, None].float() * inv_freq
    scale = float(getattr(rotary, f"{layer_type}_attention_scaling"))
    return torch.polar(torch.full_like(freqs, scale), freqs)[:, None, None]


Scratch = dict[str, torch.Tensor] | None


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scratch: Scratch,
             name: str, parts: int = 1) -> torch.Tensor:
    """x @ weight.T + bias, as [parts, tokens, outputs / parts]. At inference each part (a block
    of the weight's rows) is contiguous, which elementwise work runs through up to twice as
    fast as a strided half, and lies in a buffer (`scratch`, a dict) that every layer of the
    pass reuses: on a CPU a fresh tensor of tens of MB is new memory from the system each
    time, and touching it first costs about a quarter of the multiply (benchmarks/README.md)."""
    width = weight.shape[0] // parts
    if scratch is None:
        return F.linear(x, weight, bias).view(len(x), parts, width).transpose(0, 1)  # parts strided here
    shape = (parts, x.shape[0], width)
    out = scratch.get(name)
    if out is None or out.shape != shape:
        out = scratch[name] = x.new_empty(shape)
    for part, w in enumerate(weight.split(width)):
        torch.mm(x, w.t(), out=out[part])
    return out if bias is None else out.add_(bias.view(parts, 1, width))


def _qkv(attn: Any, normed: torch.Tensor, rope: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """[tokens, 3, heads, dim] with RoPE applied to queries and keys, in the paired order."""
    heads, dim = attn.config.num_attention_heads, attn.head_dim
    order = _pair_order(heads, dim, normed.device)
    linear = attn.Wqkv
    bias = None if linear.bias is None else linear.bias.index_select(0, order)
    qkv = _project(normed, linear.weight.index_select(0, order), bias, scratch, "qkv")[0].view(-1, 3, heads, dim)
    if scratch is not None and qkv.dtype in (torch.float32, torch.float64):
        pairs = torch.view_as_complex(qkv.view(*qkv.shape[:-1], dim // 2, 2))
        pairs[:, :2] *= rope  # in place: the linear's output is not needed again
        return qkv
    # Under autograd out of place (an in-place multiply of a view costs the backward two more
    # copies of qkv); bf16/fp16 have no complex view: rotated in float32, as transformers does.
    qk, v = qkv.split([2, 1], dim=1)
    pairs = torch.view_as_complex(qk.float().unflatten(-1, (dim // 2, 2)))
    rotated = torch.view_as_real(pairs * rope).flatten(-2)
    return torch.cat((rotated.to(qkv.dtype), v), dim=1)


def _add_linear(residual: torch.Tensor, x: torch.Tensor, linear: Any, scratch: Scratch) -> torch.Tensor:
    """residual + linear(x), the sum accumulated inside the matrix multiply: into the residual
    itself at inference (`scratch`: the stream is not needed again). Under autocast as
    transformers adds them: the low-precision output joins a float32 stream."""
    if torch.is_autocast_enabled(residual.device.type):
        return residual + linear(x)
    weight = linear.weight.t()
    out = torch.addmm(residual, x, weight) if scratch is None else residual.addmm_(x, weight)
    if linear.bias is None:
        return out
    return out + linear.bias if scratch is None else out.add_(linear.bias)


def _attention_block(layer: Any, hidden: torch.Tensor, docs: Documents, rope: torch.Tensor,
                     backend: str, probs_dropout: float | None, scratch: Scratch) -> torch.Tensor:
    """hidden + the layer's attention block."""
    attn = layer.attn
    qkv = _qkv(attn, layer.attn_norm(hidden), rope, scratch)
    if probs_dropout is None:  # the module's own rate (the official split sets it to 0)
        probs_dropout = float(getattr(attn, "attention_dropout", 0.0))
    out = ATTENTION[backend](qkv, docs, _window(attn), probs_dropout if attn.training else 0.0)
    out = out.reshape(len(hidden), -1)
    if attn.training and isinstance(attn.out_drop, torch.nn.Dropout) and attn.out_drop.p > 0:
        return hidden + attn.out_drop(attn.Wo(out))
    return _add_linear(hidden, out, attn.Wo, scratch)


def _mlp_block(mlp: Any, hidden: torch.Tensor, normed: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """hidden + the layer's GeGLU MLP (transformers' ModernBertMLP)."""
    if scratch is None:  # autograd: the module itself, compiled where train.compile asks for it
        return hidden + mlp(normed)
    inputs, gate = _project(normed, mlp.Wi.weight, mlp.Wi.bias, scratch, "mlp", parts=2)
    return _add_linear(hidden, mlp.drop(mlp.act(inputs).mul_(gate)), mlp.Wo, scratch)


def encode(model: Any, input_ids: torch.Tensor, docs: Documents, backend: Backend = "auto",
           probs_dropout: float | None = None) -> torch.Tensor:
    """Final hidden states [tokens, hidden] of a transformers ModernBertForMaskedLM (or
    ModernBertModel) for flat `input_ids` [tokens] laid out as `docs`. Dropout on attention
    probabilities is `probs_dropout`, or each attention module's own rate where None; the
    attention output's dropout is the module's `out_drop`."""
    base = getattr(model, "model", model)
    chosen = pick_backend(backend, input_ids.device, _attention_dtype(base, input_ids.device))
    hidden = base.embeddings(input_ids=input_ids[None])[0]
    ropes: dict[str, torch.Tensor] = {}
    # buffers and in-place updates only where no autograd records and no autocast casts them
    in_place = not (torch.is_grad_enabled() or torch.is_autocast_enabled(input_ids.device.type))
    scratch: Scratch = {} if in_place else None
    for layer in base.layers:
        kind = layer.attention_type
        if kind not in ropes:
            ropes[kind] = _rope(base.rotary_emb, kind, docs.positions)
        hidden = _attention_block(layer, hidden, docs, ropes[kind], chosen, probs_dropout, scratch)
        hidden = _mlp_block(layer.mlp, hidden, layer.mlp_norm(hidden), scratch)
    return base.final_norm(hidden)


def masked_lm_logits(model: Any, input_ids: torch.Tensor, docs: Documents, backend: Backend = "auto",
                     only: torch.Tensor | None = None) -> torch.Tensor:
    """MLM logits of a ModernBertForMaskedLM on the flat tokens (or only at the indices `only`,
    as the official sparse prediction: the head and decoder run on masked tokens alone)."""
    hidden = encode(model, input_ids, docs, backend)
    if only is not None:
        hidden = hidden[only]
    return model.decoder(model.head(hidden))
