"""External checkpoints written by the tests in each layout a phase may start from: a
transformers folder with a Gemma-layout tokenizer, the hub cache's layout of a pinned
revision, and a Composer checkpoint of the official training code (key names and nesting as
ModernBERT's trainer saves them), each from a model whose logits the test knows."""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import numpy as np
import torch

from mmbert.config import ModelConfig
from mmbert.modeling import build_config, new_model

ARCH = ModelConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=48,
                   local_attention=16, global_attn_every_n_layers=3, max_position_embeddings=256,
                   attention_output_dropout=0.1, attention_probs_dropout=0.0, norm_eps=1e-5, initializer_range=0.02)


def source_model(vocab: int, theta: float = 160_000.0, seed: int = 3):
    """A model with weights far from init (so that a misplaced tensor shows in the logits)."""
    model = new_model(build_config(ARCH, vocab, rope_theta_global=theta, rope_theta_local=theta), seed=seed)
    with torch.no_grad():
        for index, (_, p) in enumerate(model.named_parameters()):
            p.normal_(0.3 if p.dim() == 1 else 0.0, 0.2, generator=torch.Generator().manual_seed(index))
    return model.eval()


def flex_config(model, theta: float) -> dict:
    """The FlexBert config ModernBERT's trainer stores in its checkpoints (the mmBERT yamls' values)."""
    c = model.config
    return {"model_type": "bert", "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size, "hidden_act": "gelu", "head_pred_act": "gelu",
            "bert_layer": "prenorm", "mlp_layer": "glu", "normalization": "layernorm", "attention_layer": "rope",
            "embedding_layer": "sans_pos", "embed_norm": True, "final_norm": True, "skip_first_prenorm": True,
            "head_pred_norm": True, "rotary_emb_interleaved": False, "norm_kwargs": {"eps": 1e-5, "bias": False},
            "attn_qkv_bias": False, "attn_out_bias": False, "mlp_in_bias": False, "mlp_out_bias": False,
            "sliding_window": c.local_attention, "global_attn_every_n_layers": c.global_attn_every_n_layers,
            "rotary_emb_base": theta, "local_attn_rotary_emb_base": -1, "attn_out_dropout_prob": 0.1,
            "max_position_embeddings": 512, "padding": "unpadded"}


def composer_names(model) -> dict[str, torch.Tensor]:
    """The model's weights under the training code's names (`model.` from Composer's wrapper)."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("model.layers."):
            new = "model.bert.encoder.layers." + name.removeprefix("model.layers.")
        elif name.startswith("model."):
            new = "model.bert." + name.removeprefix("model.")
        else:
            new = "model." + name
        out[new] = tensor.clone()
    out["model.decoder.weight"] = out["model.bert.embeddings.tok_embeddings.weight"]  # tied, as the trainer saves it
    return out


def write_composer(path: Path, model, theta: float = 160_000.0) -> Path:
    """An `ep*-ba*-rank0.pt` as Composer writes it: state (model, StableAdamW moments with int32
    steps, timestamp with timedeltas, HF integration with the config, metadata with the torch
    version) and per-rank RNG states (numpy's as arrays)."""
    from torch.torch_version import TorchVersion

    weights = composer_names(model)
    optimizer = {"state": {name: {"exp_avg": torch.zeros_like(t), "exp_avg_sq": torch.zeros_like(t),
                                  "step": torch.tensor(7, dtype=torch.int32)} for name, t in list(weights.items())[:3]},
                 "param_groups": [{"lr": 4e-4, "betas": (0.9, 0.95), "params": list(weights)[:3]}]}
    wct = datetime.timedelta(hours=3, seconds=5)
    state = {"model": weights, "optimizers": {"StableAdamW": optimizer}, "schedulers": {"LambdaLR": {"last_epoch": 7}},
             "algorithms": [], "callbacks": {"SpeedMonitor": {"total_eval_wct": 0.0}}, "scaler": {},
             "timestamp": {"Timestamp": {"epoch": 0, "batch": 7, "token": 7 * 4608 * 8192, "total_wct": wct,
                                         "iteration_wct": wct, "epoch_wct": wct, "batch_wct": wct}},
             "rank_zero_seed": 21, "run_name": "mmbert-test-ext", "dataset_state": {"train": None, "eval": {}},
             "integrations": {"huggingface": {"model": {"config": {"file_extension": ".json",
                                                                   "content": flex_config(model, theta),
                                                                   "class": "src.bert_layers.model.FlexBertForMaskedLM"}},
                                              "tokenizer": {}}},
             "metadata": {"torch_version": TorchVersion(torch.__version__), "device": "gpu", "precision": "amp_bf16",
                          "world_size": 8, "device_train_microbatch_size": 8}}
    rng = [{"python": random.Random(0).getstate(), "numpy": np.random.RandomState(0).get_state(),
            "torch": torch.get_rng_state()}]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": state, "rng": rng}, path)
    return path


class WritesAFile:
    """A pickle payload: unpickling it calls Path.write_text, i.e. runs code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "written by the checkpoint"))


def write_crafted(path: Path, target: Path) -> Path:
    """A checkpoint-looking file whose pickle would write `target` if it were loaded unsafely."""
    torch.save({"state": {"model": {"model.bert.final_norm.weight": torch.ones(2)}, "payload": WritesAFile(target)}},
               path)
    return path


def write_transformers_folder(folder: Path, model, tokenizer_dir: Path) -> Path:
    """save_pretrained plus the tokenizer (a Gemma-layout tokenizer: pad 0, eos 1, bos 2, mask 4)."""
    import shutil

    model.save_pretrained(folder)
    for item in tokenizer_dir.iterdir():
        if item.is_file() and item.name not in ("effective_params.json",):
            shutil.copy2(item, folder / item.name)
    return folder


def write_hub_cache(cache: Path, repo_id: str, revision: str, folder: Path) -> Path:
    """`folder` as huggingface_hub's cache holds a downloaded snapshot of `repo_id` at `revision`
    (models--org--name/snapshots/<revision>/..., refs/main), so that snapshot_download finds it
    with HF_HUB_OFFLINE=1 exactly as after a real download."""
    import shutil

    root = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, root / "snapshots" / revision)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return root


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
