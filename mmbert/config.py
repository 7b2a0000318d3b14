"""One typed configuration for the whole pipeline, validated once at the edge.

`params.yaml` holds every knob of the embedded default. Its `profile` key selects a
profile file in `mmbert/profiles/` (micro, paper-small, paper-base) whose values replace
params.yaml's for the keys it sets. Every stage calls `load_config`, so bad input fails
before any work starts, with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PROFILES_DIR = Path(__file__).parent / "profiles"
EMBEDDED_PROFILE = "embedded"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class ConfigError(ValueError):
    """A params file that cannot run; the message names every offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """ModernBERT architecture; the vocabulary size comes from the tokenizer."""

    hidden_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    intermediate_size: PositiveInt
    local_attention: PositiveInt = Field(description="sliding-window width in tokens")
    global_attn_every_n_layers: PositiveInt
    max_position_embeddings: PositiveInt
    attention_dropout: Fraction = 0.0
    norm_eps: PositiveFloat = 1e-5
    initializer_range: PositiveFloat = 0.02

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        return self


class CorpusConfig(_Strict):
    sources: list[Literal["udhr", "django"]] = Field(min_length=1)
    eval_fraction: Annotated[float, Field(gt=0, lt=1)]
    min_train_chars: NonNegInt = Field(description="drop languages with less training text")
    split_seed: int = 0


class TokenizerConfig(_Strict):
    kind: Literal["train", "pretrained"]
    vocab_size: PositiveInt = 8192
    min_frequency: PositiveInt = 2
    pretrained: str | None = Field(None, description="hub id or local path when kind=pretrained")

    @model_validator(mode="after")
    def _pretrained_needs_name(self) -> TokenizerConfig:
        if self.kind == "pretrained" and not self.pretrained:
            raise ValueError("kind 'pretrained' needs tokenizer.pretrained (a hub id or a path)")
        return self


LanguageSelection = Literal["all"] | PositiveInt | list[str]


class PhaseData(_Strict):
    """What a phase trains on: which languages, how they are mixed, how much."""

    languages: LanguageSelection = Field(
        description="'all', N (the N largest languages of the corpus) or a list of codes"
    )
    temperature: Annotated[float, Field(gt=0, le=1)]
    tokens: PositiveInt
    seq_len: PositiveInt
    pinned_shares: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=dict)

    @field_validator("pinned_shares")
    @classmethod
    def _pinned_below_one(cls, shares: dict[str, float]) -> dict[str, float]:
        if sum(shares.values()) >= 1:
            raise ValueError(f"pinned shares sum to {sum(shares.values()):.3f}; must be < 1")
        return shares


class LRConfig(_Strict):
    peak: PositiveFloat
    warmup_tokens: NonNegInt = 0
    decay: Literal["none", "linear", "one_minus_sqrt"] = "none"
    decay_tokens: NonNegInt = Field(0, description="decay window at the end of the phase")
    final_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0


class BatchConfig(_Strict):
    size: PositiveInt = Field(description="global batch, in packed sequences")
    warmup_from: PositiveInt | None = Field(None, description="batch-size warmup start")
    warmup_tokens: NonNegInt = 0


class PhaseConfig(_Strict):
    init_from: str | None = Field(description="the phase whose final checkpoint this starts from")
    data: PhaseData
    mask_rate: Annotated[float, Field(gt=0, lt=1)]
    rope_theta_global: PositiveFloat
    rope_theta_local: PositiveFloat
    lr: LRConfig
    batch: BatchConfig
    weight_decay: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _decay_window_fits(self) -> PhaseConfig:
        if self.lr.warmup_tokens + self.lr.decay_tokens > self.data.tokens:
            raise ValueError(
                f"lr.warmup_tokens + lr.decay_tokens = "
                f"{self.lr.warmup_tokens + self.lr.decay_tokens} exceeds data.tokens "
                f"{self.data.tokens}"
            )
        if self.data.seq_len > 0 and self.batch.warmup_from and self.batch.warmup_from > self.batch.size:
            raise ValueError("batch.warmup_from must not exceed batch.size")
        return self


class HeldoutConfig(_Strict):
    """How held-out MLM loss is measured: a fixed rate and length, the same for every model."""

    mask_rate: Annotated[float, Field(gt=0, lt=1)]
    seq_len: PositiveInt
    batch_size: PositiveInt
    seed: int = 0


class TrainConfig(_Strict):
    num_workers: PositiveInt
    cpus_per_worker: PositiveFloat
    use_gpu: bool = False
    ray_address: str | None = Field(None, description="an existing Ray cluster; None starts one")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    precision: Literal["fp32", "bf16"] = "fp32"
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]
    eps: PositiveFloat = 1e-8
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    log_every: PositiveInt = 10
    checkpoint_every: PositiveInt = 100
    torch_threads: PositiveInt = 1
    heldout: HeldoutConfig = Field(description="the end-of-phase held-out loss (kept apart from eval's)")


class MergeConfig(_Strict):
    method: Literal["ties"] = "ties"
    base: str
    models: list[str] = Field(min_length=2)
    density: Annotated[float, Field(gt=0, le=1)]
    weights: list[PositiveFloat] | None = None
    normalize: bool = True

    @model_validator(mode="after")
    def _weights_match_models(self) -> MergeConfig:
        if self.weights is not None and len(self.weights) != len(self.models):
            raise ValueError(
                f"weights has {len(self.weights)} entries but models has {len(self.models)}"
            )
        return self


class LangIdConfig(_Strict):
    languages: PositiveInt = Field(description="the N largest training languages")
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    max_length: PositiveInt


class BitextConfig(_Strict):
    languages: PositiveInt = Field(description="the N largest languages with English parallel text")
    max_pairs: PositiveInt
    max_length: PositiveInt


class EvalConfig(_Strict):
    heldout: HeldoutConfig
    seed: int = 0
    models: list[str] = Field(min_length=1, description="held-out loss for these: phase names and/or 'merged'")
    downstream_models: list[str] = Field(min_length=1, description="language ID and bitext for these (a subset of models)")
    langid: LangIdConfig
    bitext: BitextConfig


class BenchConfig(_Strict):
    models: list[Literal["merged", "paper-small", "paper-base", "xlmr-base"]] = Field(min_length=1)
    documents: PositiveInt
    fixed_length: PositiveInt
    variable_mean: PositiveFloat
    variable_sd: PositiveFloat
    batch_size: PositiveInt
    repeats: PositiveInt
    warmup: NonNegInt = 1
    threads: PositiveInt = 2


class PipelineConfig(_Strict):
    profile: str
    seed: int
    output_dir: str
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    model: ModelConfig
    phases: dict[str, PhaseConfig] = Field(min_length=1)
    train: TrainConfig
    merge: MergeConfig
    eval: EvalConfig
    bench: BenchConfig

    @model_validator(mode="after")
    def _phases_form_a_tree(self) -> PipelineConfig:
        """One phase starts from scratch; every other starts from an existing phase, acyclically."""
        names = list(self.phases)
        roots = [n for n in names if self.phases[n].init_from is None]
        if len(roots) != 1:
            extra = roots[1] if roots else names[0]
            raise ValueError(f"phases.{extra}.init_from: missing; exactly one phase starts from scratch "
                             f"(found {roots or 'none'}), every other names its base phase")
        for name in names:
            base = self.phases[name].init_from
            if base is not None and base not in names:
                raise ValueError(f"phases.{name}.init_from: {base!r} is not a phase; expected one of {names}")
        order = self.phase_order()
        if len(order) != len(names):
            stuck = sorted(set(names) - set(order))
            raise ValueError(f"phases.{stuck[0]}.init_from: phases {stuck} start from each other in a cycle")
        return self

    @model_validator(mode="after")
    def _merge_and_eval_name_phases(self) -> PipelineConfig:
        names = set(self.phases)
        for key, ref in [("merge.base", self.merge.base)] + [
            (f"merge.models[{i}]", m) for i, m in enumerate(self.merge.models)
        ]:
            if ref not in names:
                raise ValueError(f"{key}: {ref!r} is not a phase; expected one of {sorted(names)}")
        for i, m in enumerate(self.eval.models):
            if m != "merged" and m not in names:
                raise ValueError(f"eval.models[{i}]: {m!r} is neither 'merged' nor a phase {sorted(names)}")
        for i, m in enumerate(self.eval.downstream_models):
            if m not in self.eval.models:
                raise ValueError(f"eval.downstream_models[{i}]: {m!r} is not in eval.models {self.eval.models}")
        return self

    def phase_order(self) -> list[str]:
        """Phases in an order where every phase comes after its base (params order kept)."""
        order: list[str] = []
        while True:
            ready = [n for n, p in self.phases.items() if n not in order and (p.init_from is None or p.init_from in order)]
            if not ready:
                return order
            order.extend(ready)


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def resolve_params(raw: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Apply the profile named by `profile` to a raw params mapping."""
    profile = raw.get("profile", EMBEDDED_PROFILE)
    path = PROFILES_DIR / f"{profile}.yaml"
    if not isinstance(profile, str) or not path.is_file():
        raise ConfigError(
            f"{source}: profile = {profile!r} is unknown; expected one of {available_profiles()}"
        )
    return _deep_merge(raw, _read_yaml(path))


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} invalid setting(s)"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union")))
        # Union members add their type name to the location; drop those for a readable key.
        key = ".".join(p for p in key.split(".") if p not in {"literal['all']", "int", "list[str]"})
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if not key:  # a whole-config check; its message starts with the key
            lines.append(f"  - {message}")
            continue
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  - {key}{shown}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: str = "params.yaml") -> PipelineConfig:
    resolved = resolve_params(raw, source)
    try:
        return PipelineConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path = "params.yaml", *, check_corpus: bool = True) -> PipelineConfig:
    """Read, resolve and validate a params file (and its languages against the corpus)."""
    path = Path(path)
    cfg = parse_config(_read_yaml(path), str(path))
    if check_corpus:
        from mmbert.corpus.catalog import check_phase_languages

        check_phase_languages(cfg, source=str(path))
    return cfg
