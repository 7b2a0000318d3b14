"""The unpadded path against transformers' ModernBertForMaskedLM on the same weights: logits
and gradients on a padded batch, documents packed in one row against each alone, sequences
longer than the local window, and checkpoints that load in AutoModelForMaskedLM."""

from __future__ import annotations

import zlib

import pytest
import torch
from transformers import AutoModelForMaskedLM

from mmbert.config import ModelConfig
from mmbert.modeling import build_config, new_model
from mmbert.unpadded import Documents, encode, masked_lm_logits

ARCH = ModelConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=48,
                   local_attention=8, global_attn_every_n_layers=3, max_position_embeddings=128,
                   attention_output_dropout=0.0, attention_probs_dropout=0.0, norm_eps=1e-5, initializer_range=0.02)
VOCAB = 100


def reference_model(attn: str = "eager"):
    # A larger init than the default 0.02 makes attention far from uniform, so a wrong mask,
    # window or position shows in the logits.
    model = new_model(build_config(ARCH, VOCAB, rope_theta_global=160_000, rope_theta_local=10_000,
                                   attn_implementation=attn), seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:  # crc32, not hash(): str hashes change per process (PYTHONHASHSEED)
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
    return model.eval()


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, VOCAB, (n,), generator=g)
        mask[row, :n] = 1
    return ids, mask


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_match_transformers_on_a_padded_batch(attn):
    model = reference_model(attn)
    ids, mask = padded_batch([37, 12, 25, 1])  # 37 > the local window of 4 each side
    docs, real = Documents.from_attention_mask(mask)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real]
        got = masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa")
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()


def test_documents_packed_in_one_row_equal_each_alone():
    model = reference_model()
    a, b = torch.randint(5, VOCAB, (23,)), torch.randint(5, VOCAB, (9,))
    packed = torch.cat([a, b])
    with torch.no_grad():
        together = encode(model, packed, Documents.from_cu_seqlens(torch.tensor([0, 23, 32])), backend="sdpa")
        alone_a = encode(model, a, Documents.from_cu_seqlens(torch.tensor([0, 23])), backend="sdpa")
        alone_b = encode(model, b, Documents.from_cu_seqlens(torch.tensor([0, 9])), backend="sdpa")
        reference_a = model.model(input_ids=a[None]).last_hidden_state[0]
    assert torch.allclose(together[:23], alone_a, atol=1e-5, rtol=0)
    assert torch.allclose(together[23:], alone_b, atol=1e-5, rtol=0)
    assert torch.allclose(alone_a, reference_a, atol=1e-4, rtol=0)
    # and the same row run as one document (what transformers does with a packed row) differs
    with torch.no_grad():
        crossed = encode(model, packed, Documents.from_cu_seqlens(torch.tensor([0, 32])), backend="sdpa")
    assert (crossed[23:] - alone_b).abs().max() > 1e-2


@pytest.mark.parametrize("alone_from", [128, 16])
def test_an_empty_document_changes_nothing(alone_from, monkeypatch):
    """cu_seqlens may repeat a boundary (packed rows allow it): the empty document is skipped,
    whether its neighbours attend alone or in padded grids."""
    import mmbert.unpadded as unpadded

    monkeypatch.setattr(unpadded, "ALONE_FROM", alone_from)
    model = reference_model()
    ids = torch.randint(5, VOCAB, (70,), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        with_empty = encode(model, ids, Documents.from_cu_seqlens(torch.tensor([0, 40, 40, 70])), backend="sdpa")
        without = encode(model, ids, Documents.from_cu_seqlens(torch.tensor([0, 40, 70])), backend="sdpa")
    assert torch.equal(with_empty, without)


def test_gradients_match_transformers_on_a_padded_batch():
    ids, mask = padded_batch([30, 18, 7], seed=1)
    docs, real = Documents.from_attention_mask(mask)
    weights = torch.randn(int(mask.sum()), VOCAB, generator=torch.Generator().manual_seed(2))

    def grads(run) -> dict[str, torch.Tensor]:
        model = reference_model()
        (run(model) * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected = grads(lambda m: m(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real])
    got = grads(lambda m: masked_lm_logits(m, ids.flatten()[real], docs, backend="sdpa"))
    assert set(got) == set(expected)
    for name in expected:
        # fp32 sums in another order (attention runs on per-length grids): within 1e-5 of the
        # gradient's own scale (these reach 100s with the test's large weights)
        scale = float(expected[name].abs().max())
        assert float((got[name] - expected[name]).abs().max()) <= 1e-5 * scale, name


@pytest.mark.parametrize("grad", [False, True])
def test_bf16_autocast_errs_no_more_than_transformers_does(grad):
    """Under bf16 autocast (the paper's precision; CPU autocast here) the path runs, with and
    without autograd, and its logits lie as close to the fp32 ones as transformers' own
    padded model's under the same autocast: RoPE falls back from its in-place complex form,
    buffers and in-place sums are skipped, and the residual stream stays float32."""
    model = reference_model("sdpa")
    ids, mask = padded_batch([37, 12, 25], seed=5)
    docs, real = Documents.from_attention_mask(mask)
    with torch.no_grad():
        exact = model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real]
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real]
        ours = masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa")
    assert ours.dtype == theirs.dtype
    their_error = float((theirs.float() - exact).abs().max())
    our_error = float((ours.float() - exact).abs().max())
    assert 0 < our_error <= 1.5 * their_error, (our_error, their_error)
    if grad:
        ours.float().sum().backward()
        assert model.model.layers[0].attn.Wqkv.weight.grad is not None


def test_sparse_prediction_runs_the_head_on_chosen_tokens_only():
    model = reference_model()
    ids = torch.randint(5, VOCAB, (40,))
    docs = Documents.from_cu_seqlens(torch.tensor([0, 15, 40]))
    chosen = torch.tensor([3, 17, 39])
    with torch.no_grad():
        full = masked_lm_logits(model, ids, docs, backend="sdpa")
        sparse = masked_lm_logits(model, ids, docs, backend="sdpa", only=chosen)
    assert torch.allclose(sparse, full[chosen], atol=1e-5, rtol=0)


def test_narrow_grids_take_the_math_kernel_on_a_cpu_and_wide_ones_flash(monkeypatch):
    """Grids narrower than MATH_BELOW tokens attend through SDPA's math kernel (faster there on a
    CPU), wider ones through the flash kernel, forward and backward; the gradient tests check
    the values."""
    from torch.profiler import profile

    import mmbert.unpadded as unpadded

    assert unpadded.MATH_BELOW == 32
    monkeypatch.setattr(unpadded, "SLICED_FROM", 100)  # one call per grid in local layers too
    model = reference_model()
    ids, mask = padded_batch([30, 18, 7, 40], seed=7)  # grids 7, 30 (18 and 30) and 40 wide
    docs, real = Documents.from_attention_mask(mask)
    with profile() as run:
        masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa").sum().backward()
    calls = {event.key: event.count for event in run.key_averages()}
    layers = ARCH.num_hidden_layers
    assert calls.get("aten::_scaled_dot_product_attention_math") == 2 * layers
    assert calls.get("aten::_scaled_dot_product_flash_attention_for_cpu") == layers
    assert calls.get("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == layers


def test_a_checkpoint_runs_unchanged_in_both_paths(tmp_path):
    model = reference_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(5, VOCAB, (50,))
    docs = Documents.from_cu_seqlens(torch.tensor([0, 50]))
    with torch.no_grad():
        ours = masked_lm_logits(loaded, ids, docs, backend="sdpa")
        theirs = loaded(input_ids=ids[None]).logits[0]
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def test_gpu_backends_are_refused_on_cpu():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        encode(reference_model(), torch.tensor([5, 6]), Documents.from_cu_seqlens(torch.tensor([0, 2])),
               backend="varlen")


def test_auto_takes_flash_kernels_only_where_they_run():
    """FlashAttention (varlen, flash_attn) runs on CUDA in fp16/bf16 only: 'auto' takes varlen
    there and sdpa for float32 (a GPU model evaluated in fp32) or a CPU; asking for a flash
    kernel with float32 inputs names the dtype."""
    from mmbert.unpadded import pick_backend

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert pick_backend("auto", cuda, torch.bfloat16) == "varlen"
    assert pick_backend("auto", cuda, torch.float16) == "varlen"
    assert pick_backend("auto", cuda, torch.float32) == "sdpa"
    assert pick_backend("auto", cpu, torch.bfloat16) == "sdpa"
    assert pick_backend("flash_attn", cuda, torch.bfloat16) == "flash_attn"
    with pytest.raises(ValueError, match="fp16/bf16.*float32"):
        pick_backend("varlen", cuda, torch.float32)


def _cuda_backends() -> list[str]:
    import importlib.util

    if not torch.cuda.is_available():
        return []
    found = ["sdpa"]
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        found.append("varlen")
    except ImportError:
        pass
    return found + (["flash_attn"] if importlib.util.find_spec("flash_attn") else [])


@pytest.mark.parametrize("backend", ["sdpa", "varlen", "flash_attn"])
def test_cuda_backends_match_transformers_under_bf16(backend):
    """On a GPU (skipped without one, or without the backend): under bf16 autocast, the
    paper's precision and the only one FlashAttention takes, logits and the gradient of Wqkv
    lie as close to transformers' fp32 ones as transformers' own under the same autocast, for
    a document longer than the local window; documents packed in one row equal each alone."""
    if backend not in _cuda_backends():
        pytest.skip(f"needs a CUDA device with the {backend} backend")
    model = reference_model("sdpa").cuda()
    ids, mask = (t.cuda() for t in padded_batch([37, 12, 25, 1], seed=8))
    docs, real = Documents.from_attention_mask(mask)
    flat = ids.flatten()[real]
    weights = torch.randn(len(real), VOCAB, generator=torch.Generator().manual_seed(9)).cuda()
    wqkv = model.model.layers[1].attn.Wqkv.weight

    def run(forward, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = forward()
        grad = torch.autograd.grad((logits.float() * weights).sum(), wqkv)[0]
        return logits.float().detach(), grad

    def theirs():
        return model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real]

    def ours():
        return masked_lm_logits(model, flat, docs, backend=backend)

    exact, exact_grad = run(theirs, autocast=False)
    their_logits, their_grad = run(theirs, autocast=True)
    our_logits, our_grad = run(ours, autocast=True)
    # bf16 rounding differs from kernel to kernel; a wrong mask, window or position errs by
    # orders of magnitude more than either
    assert float((our_logits - exact).abs().max()) <= 2 * float((their_logits - exact).abs().max())
    assert float((our_grad - exact_grad).abs().max()) <= 2 * float((their_grad - exact_grad).abs().max())
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        together = encode(model, flat, docs, backend=backend)
        first = encode(model, flat[:37], Documents.from_cu_seqlens(torch.tensor([0, 37]).cuda()), backend=backend)
        crossed = encode(model, flat, Documents.from_cu_seqlens(torch.tensor([0, len(flat)]).cuda()), backend=backend)
    assert float((together[:37].float() - first.float()).abs().max()) <= 5e-2
    assert float((crossed[:37].float() - first.float()).abs().max()) > 0.2  # the check can see a crossing


def test_compiled_blocks_keep_parameter_names_and_outputs():
    """train.compile: the compiled model computes the same logits, forward and backward, and
    its state dict (what a checkpoint holds) keeps transformers' names."""
    from mmbert.modeling import compile_blocks

    model = reference_model()
    ids, mask = padded_batch([21, 9])
    docs, real = Documents.from_attention_mask(mask)
    names = list(model.state_dict())
    called = []  # compile works through the module's call: training must go through it
    hooks = [layer.mlp.register_forward_hook(lambda *_: called.append(1)) for layer in model.model.layers]
    expected = masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa")
    expected.sum().backward()
    for hook in hooks:
        hook.remove()
    assert len(called) == len(model.model.layers)
    expected_grad = model.model.layers[0].mlp.Wi.weight.grad.clone()
    model.zero_grad()
    compile_blocks(model)
    got = masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa")
    got.sum().backward()
    assert list(model.state_dict()) == names
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)
    assert torch.allclose(model.model.layers[0].mlp.Wi.weight.grad, expected_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("lengths, alone_from, alone", [
    ([120, 100, 7], 128, 0),  # all in padded grids
    ([40, 30, 7], 128, 0),
    ([27, 25, 7], 128, 0),
    ([120, 100, 7], 64, 2),  # two long documents as views of their tokens, one in a padded grid
    ([120, 7, 100], 64, 2),  # ... with the short one between them
    ([120, 30, 100], 25, 3),  # every document alone: outputs already in order
])
def test_wide_grids_attend_locally_by_slices_and_match_transformers(lengths, alone_from, alone, monkeypatch):
    """Documents at least SLICED_FROM windows long take local attention in slices of queries,
    each against its slice of keys (one slice and a part, several, a ragged last one), in a
    padded grid or alone (ALONE_FROM); logits and gradients still equal transformers' on a
    padded batch, shorter documents in the same batch included."""
    import mmbert.unpadded as unpadded

    window = ARCH.local_attention // 2
    assert 25 >= unpadded.SLICED_FROM * window > 16  # the 7-token document stays on the band mask
    monkeypatch.setattr(unpadded, "ALONE_FROM", alone_from)
    mode = "sliced"
    model = reference_model()
    ids, mask = padded_batch(lengths, seed=3)
    docs, real = Documents.from_attention_mask(mask)
    expected = model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[real]
    got = masked_lm_logits(model, ids.flatten()[real], docs, backend="sdpa")
    assert any(key.endswith(f":{mode}") for key in docs.cache), f"the {mode} path was not taken"
    assert sum(not bucket.padded for bucket in docs.cache["buckets"]) == alone
    assert (docs.cache["output_of"] is None) == (alone == len(lengths))
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()
    weights = torch.randn(got.shape, generator=torch.Generator().manual_seed(4))
    grad_got = torch.autograd.grad((got * weights).sum(), model.model.layers[1].attn.Wqkv.weight)[0]
    grad_expected = torch.autograd.grad((expected * weights).sum(), model.model.layers[1].attn.Wqkv.weight)[0]
    assert float((grad_got - grad_expected).abs().max()) <= 1e-5 * float(grad_expected.abs().max())
