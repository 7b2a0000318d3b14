"""One typed configuration for the whole pipeline, validated once at the edge.

`params.yaml` is the single source of truth: every value a stage uses is written there (no
field below has a default), so what DVC tracks is what the stages run with. Presets
(`python -m mmbert.preset NAME`) write their values into params.yaml rather than overlaying
it at run time. Every stage calls `load_config`, so bad input fails before any work starts,
with a message naming the key, the value and what is allowed.

Settings that only change how a run is executed (cluster address, CPU share, threads, log
and checkpoint cadence, retries) live in `runtime`, which no DVC stage depends on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Beta = Annotated[float, Field(ge=0, lt=1)]
PHASE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SPECIAL_TOKENS = 5  # pad, sep, cls, unk, mask (mmbert.modeling.SpecialIds)
BYTE_ALPHABET = 256  # a byte-level BPE always holds every byte


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
    local_attention: PositiveInt = Field(description="sliding-window width in tokens (even)")
    global_attn_every_n_layers: PositiveInt
    max_position_embeddings: PositiveInt
    attention_output_dropout: Fraction = Field(description="dropout on the attention output (official: 0.1)")
    attention_probs_dropout: Fraction = Field(description="dropout on attention probabilities (official: 0)")
    norm_eps: PositiveFloat
    initializer_range: PositiveFloat

    @model_validator(mode="after")
    def _shapes_fit(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"model.hidden_size {self.hidden_size} is not divisible by "
                             f"model.num_attention_heads {self.num_attention_heads}")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"model: head size {self.hidden_size // self.num_attention_heads} must be even (RoPE "
                             "rotates pairs of dimensions)")
        if self.local_attention % 2:
            raise ValueError(f"model.local_attention = {self.local_attention}: must be even (the window is "
                             "local_attention/2 tokens each side)")
        return self


class HubConfig(_Strict):
    """Where the hub sources (mmbert.corpus.hub_catalog) are read from, and at which revision."""

    revisions: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]] = Field(
        description="source -> commit of its dataset repository, over the catalog's pinned one")
    patterns: dict[str, str] = Field(description="source -> files glob in its repository, over the catalog's layout")
    detokenizer: str | None = Field(description="tokenizer of the token-id sources (ProLong: Llama 3)")
    plan_margin: Annotated[float, Field(ge=1)] = Field(
        description="files are planned to cover this multiple of a budget's estimated tokens")
    sizes: Literal["fineweb2", "mmbert"] = Field(description=(
        "tokens each language has, estimated before download (mmbert.mixing.sizes): 'fineweb2' from "
        "FineWeb2's current table, 'mmbert' as the FineWeb2 mmBERT read (reconstructed from its table)"))


class CorpusConfig(_Strict):
    sources: list[Literal["udhr", "django"]] = Field(min_length=1)
    hub: HubConfig
    eval_fraction: Annotated[float, Field(gt=0, lt=1)]
    min_train_chars: NonNegInt = Field(description="drop languages with less training text")
    split_seed: NonNegInt

    @field_validator("sources")
    @classmethod
    def _unique(cls, sources: list[str]) -> list[str]:
        return _no_repeats(sources)


class TokenizerConfig(_Strict):
    kind: Literal["train", "pretrained"]
    vocab_size: PositiveInt
    min_frequency: PositiveInt
    pretrained: str | None = Field(description="hub id or local path when kind=pretrained")

    @model_validator(mode="after")
    def _kind_is_complete(self) -> TokenizerConfig:
        if self.kind == "pretrained" and not self.pretrained:
            raise ValueError("tokenizer.pretrained: kind 'pretrained' needs a hub id or a path")
        if self.kind == "train" and self.vocab_size < BYTE_ALPHABET + SPECIAL_TOKENS:
            raise ValueError(f"tokenizer.vocab_size = {self.vocab_size}: a byte-level BPE needs at least "
                             f"{BYTE_ALPHABET + SPECIAL_TOKENS} (256 bytes + 5 special tokens)")
        return self


# 'paper:<phase>': the paper's languages of that phase (mmbert.corpus.paper_languages).
PaperLanguages = Annotated[str, Field(pattern=r"^paper:(pretrain|ext|decay-eng|decay-mid|decay-all)$")]
LanguageSelection = Literal["all"] | PositiveInt | PaperLanguages | Annotated[list[str], Field(min_length=1)]


def _no_repeats(items: list[str]) -> list[str]:
    repeated = sorted({x for x in items if items.count(x) > 1})
    if repeated:
        raise ValueError(f"lists {repeated} more than once")
    return items


class PhaseData(_Strict):
    """What a phase trains on: which languages, how they are mixed, how much."""

    languages: LanguageSelection = Field(
        description="'all', N (the N largest languages of the corpus), 'paper:<phase>' or a list of codes (which may "
                    "include a 'paper:<phase>' list)"
    )
    temperature: Annotated[float, Field(gt=0, le=1)]
    max_repeats: PositiveFloat | None = Field(description=(
        "most times a language's tokens may be repeated in the phase; a language the temperature would give "
        "more is held there and the rest is spread over the others (mmbert.mixing.allocate); null: no cap"))
    tokens: PositiveInt
    seq_len: PositiveInt
    pinned_shares: dict[str, Annotated[float, Field(gt=0, lt=1)]]
    released: list[str] = Field(description=(
        "pre-tokenized MDS datasets to train on instead of the corpus (the official mixes: "
        "hf://datasets/jhu-clsp/mmBERT-...; any streaming remote or local folder); [] builds the mix"))
    sources: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(description=(
        "hub source -> share of the phase's tokens (mmbert.corpus.hub_catalog); {} mixes the built corpus"))

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, languages: LanguageSelection) -> LanguageSelection:
        return _no_repeats(languages) if isinstance(languages, list) else languages

    @model_validator(mode="after")
    def _pinned_fit(self) -> PhaseData:
        total = sum(self.pinned_shares.values())
        if total >= 1:
            raise ValueError(f"pinned_shares sum to {total:.3f}; must be < 1")
        if isinstance(self.languages, list) and not any(lang.startswith("paper:") for lang in self.languages):
            outside = sorted(set(self.pinned_shares) - set(self.languages))
            if outside:
                raise ValueError(f"pinned_shares names {outside}, which are not in data.languages")
        return self

    @model_validator(mode="after")
    def _sources_are_a_mixture(self) -> PhaseData:
        # Source names are checked against the hub catalog by the corpus check
        # (mmbert.corpus.catalog), so that editing the catalog re-runs only the stages that read it.
        if not self.sources:
            return self
        if abs(sum(self.sources.values()) - 1) > 1e-3:
            raise ValueError(f"sources shares sum to {sum(self.sources.values()):.4f}; they must sum to 1")
        if self.released:
            raise ValueError("sources and released are both set; a phase trains on one of them")
        return self


class LRConfig(_Strict):
    peak: PositiveFloat
    warmup_tokens: NonNegInt
    decay: Literal["none", "linear", "one_minus_sqrt"]
    decay_tokens: NonNegInt = Field(description="decay window at the end of the phase")
    final_fraction: Annotated[float, Field(ge=0, le=1)]

    @model_validator(mode="after")
    def _decay_is_consistent(self) -> LRConfig:
        if self.decay == "none" and self.decay_tokens:
            raise ValueError(f"lr.decay_tokens = {self.decay_tokens} but lr.decay is 'none'; set 0 or a decay shape")
        if self.decay != "none" and not self.decay_tokens:
            raise ValueError(f"lr.decay = {self.decay!r} needs lr.decay_tokens > 0")
        return self


class BatchConfig(_Strict):
    """Global batch in packed sequences; each worker runs its share in micro-batches.

    warmup 'micro_batches' is the official schedule: from one micro-batch per worker, growing
    by one micro-batch per worker, each size held for the same number of steps, over
    warmup_tokens. 'linear' ramps from warmup_from to size. 'none' starts at size.
    """

    size: PositiveInt
    micro_batch_size: PositiveInt = Field(description="sequences per worker per forward pass")
    warmup: Literal["none", "linear", "micro_batches"]
    warmup_from: PositiveInt | None = Field(description="start size of a 'linear' warmup")
    warmup_tokens: NonNegInt

    @model_validator(mode="after")
    def _warmup_is_complete(self) -> BatchConfig:
        if self.warmup == "linear":
            if not self.warmup_from or not self.warmup_tokens:
                raise ValueError("batch.warmup 'linear' needs batch.warmup_from and batch.warmup_tokens > 0")
            if self.warmup_from > self.size:
                raise ValueError(f"batch.warmup_from = {self.warmup_from} exceeds batch.size {self.size}")
        elif self.warmup_from is not None:
            raise ValueError(f"batch.warmup_from = {self.warmup_from} is only used by warmup 'linear' "
                             f"(warmup is {self.warmup!r}); set it to null")
        if self.warmup == "micro_batches" and not self.warmup_tokens:
            raise ValueError("batch.warmup 'micro_batches' needs batch.warmup_tokens > 0")
        if self.warmup == "none" and self.warmup_tokens:
            raise ValueError(f"batch.warmup_tokens = {self.warmup_tokens} but batch.warmup is 'none'")
        return self


class PhaseConfig(_Strict):
    init_from: str | None = Field(description="the phase (or checkpoints.<name>) whose weights this starts from; "
                                              "null: from scratch")
    data: PhaseData
    mask_rate: Annotated[float, Field(gt=0, lt=1)]
    rope_theta_global: PositiveFloat
    rope_theta_local: PositiveFloat
    lr: LRConfig
    batch: BatchConfig
    weight_decay: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _schedules_fit_the_phase(self) -> PhaseConfig:
        if self.lr.warmup_tokens + self.lr.decay_tokens > self.data.tokens:
            raise ValueError(f"lr.warmup_tokens + lr.decay_tokens = {self.lr.warmup_tokens + self.lr.decay_tokens} "
                             f"exceeds data.tokens {self.data.tokens}")
        if self.batch.warmup_tokens > self.data.tokens:
            raise ValueError(f"batch.warmup_tokens = {self.batch.warmup_tokens} exceeds data.tokens {self.data.tokens}")
        return self


class HeldoutConfig(_Strict):
    """How held-out MLM loss is measured: a fixed rate and length, the same for every model."""

    mask_rate: Annotated[float, Field(gt=0, lt=1)]
    seq_len: PositiveInt
    batch_size: PositiveInt
    seed: NonNegInt


class OptimizerConfig(_Strict):
    """stable_adamw: the official optimizer (per-tensor update clipping, no global clipping);
    adamw: torch AdamW. Both decay weights fully decoupled from the LR (wd at the peak LR)."""

    name: Literal["stable_adamw", "adamw"]
    betas: tuple[Beta, Beta]
    eps: PositiveFloat
    grad_clip: Annotated[float, Field(ge=0, description="global gradient-norm clip; 0 = none")]


class TrainConfig(_Strict):
    """What changes a training result (how it is executed is `runtime`)."""

    num_workers: PositiveInt
    use_gpu: bool
    attn_implementation: Literal["unpadded", "sdpa", "eager", "flash_attention_2"] = Field(
        description="unpadded: mmbert.unpadded, real tokens only and attention within each document, as the "
                    "official runs; sdpa | eager | flash_attention_2: transformers' padded model, where the "
                    "documents of a packed row attend to each other")
    attention_backend: Literal["auto", "sdpa", "varlen", "flash_attn"] = Field(
        description="the unpadded path's attention: varlen (torch's FlashAttention varlen) or flash_attn "
                    "(the flash-attn package) on a GPU in bf16, sdpa anywhere; auto: varlen on a GPU in bf16, "
                    "else sdpa")
    precision: Literal["fp32", "bf16"]
    compile: bool = Field(description="torch.compile each MLP and the MLM head (in place: checkpoints unchanged)")
    optimizer: OptimizerConfig
    heldout: HeldoutConfig = Field(description="the end-of-phase held-out loss (kept apart from eval's)")
    shuffle_block_rows: PositiveInt = Field(
        description="rows shuffled together: whole shards, in a per-pass shuffled order, until this many")

    @model_validator(mode="after")
    def _flash_needs_gpu(self) -> TrainConfig:
        if self.attn_implementation == "flash_attention_2" and not self.use_gpu:
            raise ValueError("train.attn_implementation 'flash_attention_2' needs train.use_gpu: true")
        if self.attention_backend in ("varlen", "flash_attn"):
            if self.attn_implementation != "unpadded":
                raise ValueError(f"train.attention_backend {self.attention_backend!r} is the unpadded path's; "
                                 f"it needs train.attn_implementation: unpadded, not {self.attn_implementation!r}")
            if not self.use_gpu:
                raise ValueError(f"train.attention_backend {self.attention_backend!r} needs train.use_gpu: true")
            if self.precision != "bf16":  # FlashAttention kernels take fp16/bf16 only
                raise ValueError(f"train.attention_backend {self.attention_backend!r} needs train.precision: bf16, "
                                 f"not {self.precision!r}")
        return self


class RuntimeConfig(_Strict):
    """How a run is executed; no stage output depends on these, so DVC tracks none of them."""

    ray_address: str | None = Field(description="an existing Ray cluster; null: $RAY_ADDRESS, else a local one")
    cpus_per_worker: PositiveFloat
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(description=(
        "how Ray places a phase's workers on the cluster's nodes (STRICT_SPREAD: one per node)"))
    torch_threads: PositiveInt
    log_every: PositiveInt
    checkpoint_every: PositiveInt
    cpus_per_trial: PositiveFloat = Field(description="CPUs a fine-tuning trial takes where the cluster has no GPU")
    stage_retries: NonNegInt = Field(description="Prefect retries of a failed stage (a retry resumes it)")
    retry_delay_seconds: NonNegInt
    storage: str | None = Field(description=(
        "where training checkpoints and resume records live: s3://bucket/prefix, gs://... (mmbert.storage; "
        "AWS_ENDPOINT_URL for an S3-compatible server), a shared folder; null: output_dir/.checkpoints"))
    mix_remote: str | None = Field(
        description="object store or folder holding the mix outputs (<prefix>/<phase>); null: output_dir/mix")
    data_cache: str | None = Field(description="local cache for shards read from mix_remote")
    hub_dir: str | None = Field(description="local copies of hub sources, <hub_dir>/<repo id>/<path>; null: the hub")
    download_mb_per_s: PositiveFloat = Field(description="expected hub bandwidth, for the mix stage's time estimate")


class MergeConfig(_Strict):
    method: Literal["ties"]
    base: str
    models: list[str] = Field(min_length=2)
    density: Annotated[float, Field(gt=0, le=1)]
    weights: list[PositiveFloat] | None
    normalize: bool

    @model_validator(mode="after")
    def _models_are_distinct(self) -> MergeConfig:
        _no_repeats(self.models)
        if self.base in self.models:
            raise ValueError(f"merge.models lists the base {self.base!r}; TIES merges task vectors relative to it")
        if self.weights is not None and len(self.weights) != len(self.models):
            raise ValueError(f"merge.weights has {len(self.weights)} entries but merge.models has {len(self.models)}")
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
    seed: NonNegInt
    models: list[str] = Field(min_length=1, description="held-out loss for these: phase names and/or 'merged'")
    downstream_models: list[str] = Field(min_length=1, description="language ID and bitext for these (a subset of models)")
    langid: LangIdConfig
    bitext: BitextConfig

    @field_validator("models", "downstream_models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        return _no_repeats(models)


class MixConfig(_Strict):
    """How the mix stages cut documents, pack rows and write shards (the official data is
    chunked-8192-512-32-backfill: see mmbert/chunking.py)."""

    chunk_min_tokens: PositiveInt = Field(description="a split document's last piece is backfilled up to this")
    chunk_drop_below: PositiveInt = Field(description="pieces and documents shorter than this are dropped")
    pack_buffer_rows: PositiveInt = Field(description="open rows best-fit packing chooses among")
    pack_task_tokens: PositiveInt = Field(description="tokens one Ray packing task packs (its own MDS partition)")
    shard_size_limit: PositiveInt = Field(description="bytes of one MDS shard before compression")
    compression: Literal["zstd"] | None

    @model_validator(mode="after")
    def _drop_below_min(self) -> MixConfig:
        if self.chunk_drop_below > self.chunk_min_tokens:
            raise ValueError(f"mix.chunk_drop_below = {self.chunk_drop_below} exceeds mix.chunk_min_tokens "
                             f"= {self.chunk_min_tokens}; a backfilled last piece would be shorter than kept pieces")
        return self


class BenchConfig(_Strict):
    models: list[Literal["merged", "paper-small", "paper-base", "xlmr-base", "merged:unpadded",
                         "paper-small:unpadded", "paper-base:unpadded"]] = Field(
        min_length=1, description="<name>:unpadded runs a ModernBERT model through mmbert.unpadded")
    documents: PositiveInt
    fixed_length: PositiveInt
    variable_mean: PositiveFloat
    variable_sd: PositiveFloat
    batch_size: PositiveInt
    repeats: PositiveInt
    warmup: NonNegInt
    threads: PositiveInt

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        return _no_repeats(models)


class FinetuneSuiteConfig(_Strict):
    """One fine-tuning suite (GLUE, XTREME, low-resource QA): which models, tasks and trials."""

    enabled: bool = Field(description="run this suite in the pipeline (its stage records 'not enabled' otherwise)")
    models: list[str] = Field(min_length=1, description="phase names and/or 'merged'")
    tasks: list[str] | None = Field(description="a subset of the suite's tasks; null: all")
    lrs: list[PositiveFloat] | None = Field(description="an LR grid; null: each task's protocol LR")
    seeds: list[NonNegInt] = Field(min_length=1, description="the result is the median over these seeds")
    epochs: PositiveInt | None = Field(description="null: each task's protocol epochs")
    batch_size: PositiveInt
    eval_batch_size: PositiveInt
    warmup_ratio: Fraction
    weight_decay: Annotated[float, Field(ge=0)]
    max_train_examples: PositiveInt | None = Field(description="cap per training set (quick runs); null: all")
    max_eval_examples: PositiveInt | None = Field(description="cap per evaluation set; null: all")

    @field_validator("models", "tasks", "seeds", "lrs")
    @classmethod
    def _unique(cls, values: list | None) -> list | None:
        return None if values is None else _no_repeats(values)


class EmbeddingTrainConfig(_Strict):
    """Sentence-Transformers fine-tuning on MS MARCO hard triplets (the paper's recipe)."""

    rows: PositiveInt = Field(description="training triplets taken after the held-out split (paper: 1.25M)")
    heldout_rows: PositiveInt
    split_seed: NonNegInt
    batch_size: PositiveInt
    mini_batch_size: PositiveInt = Field(description="CachedMNRL's chunk size (memory, not the result)")
    scale: PositiveFloat
    warmup_ratio: Fraction
    max_length: PositiveInt


class MtebSuiteConfig(_Strict):
    enabled: bool
    models: list[str] = Field(min_length=1)
    benchmarks: list[Literal["MTEB(eng, v2)", "MTEB(Multilingual, v2)", "CoIR"]] = Field(min_length=1)
    tasks: list[str] | None = Field(description="a subset of the benchmarks' tasks; null: all")
    lrs: list[PositiveFloat] = Field(min_length=1)
    seeds: list[NonNegInt] = Field(min_length=1)
    eval_batch_size: PositiveInt
    train: EmbeddingTrainConfig


class SuitesConfig(_Strict):
    """The paper's evaluation suites; each is its own DVC stage (eval-<suite>)."""

    data_dir: str | None = Field(description="local copies of the benchmark datasets; null: the hub")
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["fp32", "bf16"]
    compare_with: Literal["mmbert-small", "mmbert-base", "xlm-r-base", "modernbert-base", "mgte-base"]
    glue: FinetuneSuiteConfig
    xtreme: FinetuneSuiteConfig
    lowres_qa: FinetuneSuiteConfig
    mteb: MtebSuiteConfig


class ExternalCheckpoint(_Strict):
    """A model from outside the run that a phase starts from or the merge takes: a
    transformers folder or a Composer checkpoint of the official runs, on the hub at a pinned
    revision or on a local path. Its stage (fetch@<name>) downloads and converts it once."""

    hub: str | None = Field(description="hub model repository, e.g. jhu-clsp/mmBERT-base")
    revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] | None = Field(
        description="the commit of the hub repository (a pinned revision: a new one re-runs what depends on it)")
    path: str | None = Field(description="a local transformers folder or Composer .pt file instead of the hub")
    file: str | None = Field(description="inside the hub repository: the Composer .pt file, or the transformers "
                                         "folder; null: the repository's root folder")
    format: Literal["transformers", "composer"]

    @model_validator(mode="after")
    def _one_source(self) -> ExternalCheckpoint:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of hub (a repository id, with revision) and path (a local copy)")
        if self.hub is not None and self.revision is None:
            raise ValueError(f"hub {self.hub!r} needs a revision: a 40-character commit (pinned, so that a re-run "
                             "reads the same weights)")
        if self.format == "composer" and self.hub is not None and not (self.file or "").endswith(".pt"):
            raise ValueError("format composer on the hub needs file: the .pt checkpoint inside the repository")
        return self


class PublishConfig(_Strict):
    """The optional publish stage: one checkpoint of the run, with its model card, to a hub
    model repository (HF_TOKEN from the environment)."""

    enabled: bool = Field(description="true adds the publish stage (after eval) to dvc.yaml and the flow")
    model: str = Field(description="the checkpoint to upload: a phase, or merged")
    repo_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")] | None = Field(
        description="the hub model repository, e.g. your-org/mmbert-repro-small")
    revision: str = Field(min_length=1, description="the branch to commit to (created if missing)")
    private: bool = Field(description="create the repository private (an existing one keeps its visibility)")
    dry_run: bool = Field(description="print exactly what would be uploaded, upload nothing")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> PublishConfig:
        if self.enabled and self.repo_id is None:
            raise ValueError("publish.enabled is true but publish.repo_id is null: name the hub repository "
                             "(owner/name) to upload to")
        return self


class PipelineConfig(_Strict):
    seed: NonNegInt
    output_dir: str
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    model: ModelConfig
    phases: dict[str, PhaseConfig] = Field(min_length=1)
    mix: MixConfig
    train: TrainConfig
    runtime: RuntimeConfig
    merge: MergeConfig
    eval: EvalConfig
    suites: SuitesConfig
    bench: BenchConfig
    publish: PublishConfig
    checkpoints: dict[str, ExternalCheckpoint] = Field(description=(
        "external models by name (released mmBERT checkpoints, your own): a phase's init_from or the merge may "
        "name them"))

    @model_validator(mode="after")
    def _phases_form_a_tree(self) -> PipelineConfig:
        """At most one phase starts from scratch; the others from a phase or an external
        checkpoint, acyclically."""
        names = list(self.phases)
        for name in [*names, *self.checkpoints]:
            if not PHASE_NAME.match(name):
                raise ValueError(f"{'phases' if name in self.phases else 'checkpoints'}.{name}: a name is lower-case "
                                 "letters, digits, '-' and '_' (it names DVC stages and folders)")
        both = sorted(set(names) & set(self.checkpoints))
        if both or "merged" in self.checkpoints:
            raise ValueError(f"checkpoints {both or ['merged']}: a checkpoint needs a name no phase (nor the merge) has")
        scratch = [n for n in names if self.phases[n].init_from is None]
        if len(scratch) > 1 or not (scratch or any(p.init_from in self.checkpoints for p in self.phases.values())):
            extra = scratch[1] if len(scratch) > 1 else names[0]
            raise ValueError(f"phases.{extra}.init_from: missing; one phase starts from scratch (found "
                             f"{scratch or 'none'}) or from an external checkpoint, every other names its base")
        for name in names:
            base = self.phases[name].init_from
            if base is not None and base not in names and base not in self.checkpoints:
                raise ValueError(f"phases.{name}.init_from: {base!r} is neither a phase {names} nor a checkpoint "
                                 f"{sorted(self.checkpoints)}")
        order = self.phase_order()
        if len(order) != len(names):
            stuck = sorted(set(names) - set(order))
            raise ValueError(f"phases.{stuck[0]}.init_from: phases {stuck} start from each other in a cycle")
        return self

    @model_validator(mode="after")
    def _lengths_fit_the_model(self) -> PipelineConfig:
        limit = self.model.max_position_embeddings
        lengths = {f"phases.{n}.data.seq_len": p.data.seq_len for n, p in self.phases.items()} | {
            "train.heldout.seq_len": self.train.heldout.seq_len,
            "eval.heldout.seq_len": self.eval.heldout.seq_len,
            "eval.langid.max_length": self.eval.langid.max_length,
            "eval.bitext.max_length": self.eval.bitext.max_length,
        }
        for key, length in lengths.items():
            if length > limit:
                raise ValueError(f"{key} = {length} exceeds model.max_position_embeddings {limit}")
        for name, phase in self.phases.items():
            if self.mix.chunk_min_tokens > phase.data.seq_len - 2:
                raise ValueError(f"mix.chunk_min_tokens = {self.mix.chunk_min_tokens} does not fit phases.{name}."
                                 f"data.seq_len = {phase.data.seq_len} less [CLS] and [SEP]")
        return self

    @model_validator(mode="after")
    def _batches_split_over_workers(self) -> PipelineConfig:
        workers = self.train.num_workers
        for name, phase in self.phases.items():
            b = phase.batch
            unit = workers * b.micro_batch_size if b.warmup == "micro_batches" else workers
            what = f"{workers} workers x micro_batch_size {b.micro_batch_size}" if unit != workers else f"{workers} workers"
            if b.size % unit:
                raise ValueError(f"phases.{name}.batch.size = {b.size} is not divisible by {what} = {unit}")
            if b.warmup_from is not None and b.warmup_from % workers:
                raise ValueError(f"phases.{name}.batch.warmup_from = {b.warmup_from} is not divisible by "
                                 f"train.num_workers {workers}")
        return self

    @model_validator(mode="after")
    def _merge_and_eval_name_phases(self) -> PipelineConfig:
        names = set(self.phases) | set(self.checkpoints)
        for key, ref in [("merge.base", self.merge.base)] + [
            (f"merge.models[{i}]", m) for i, m in enumerate(self.merge.models)
        ]:
            if ref not in names:
                raise ValueError(f"{key}: {ref!r} is neither a phase nor a checkpoint; expected one of {sorted(names)}")
        for i, m in enumerate(self.merge.models):
            if m in self.checkpoints:
                continue  # an external model's lineage is not known here; it is taken to branch from the base
            if self.merge.base not in self.ancestors(m):
                raise ValueError(f"merge.models[{i}]: {m!r} does not start from merge.base {self.merge.base!r} "
                                 f"(its chain is {self.ancestors(m)})")
        for i, m in enumerate(self.eval.models):
            if m != "merged" and m not in names:
                raise ValueError(f"eval.models[{i}]: {m!r} is neither 'merged' nor a phase or checkpoint {sorted(names)}")
        for i, m in enumerate(self.eval.downstream_models):
            if m not in self.eval.models:
                raise ValueError(f"eval.downstream_models[{i}]: {m!r} is not in eval.models {self.eval.models}")
        if self.publish.model != "merged" and self.publish.model not in self.phases:
            raise ValueError(f"publish.model: {self.publish.model!r} is neither 'merged' nor a phase "
                             f"{sorted(self.phases)} (the run's own checkpoints carry its model cards)")
        for suite in ("glue", "xtreme", "lowres_qa", "mteb"):
            for i, m in enumerate(getattr(self.suites, suite).models):
                if m != "merged" and m not in names:
                    raise ValueError(f"suites.{suite}.models[{i}]: {m!r} is neither 'merged' nor a phase or "
                                     f"checkpoint {sorted(names)}")
        return self

    def ancestors(self, phase: str) -> list[str]:
        """The phases `phase` starts from, nearest first."""
        chain, base = [], self.phases[phase].init_from
        while base is not None and base not in chain:
            chain.append(base)
            base = self.phases[base].init_from if base in self.phases else None
        return chain

    def phase_order(self) -> list[str]:
        """Phases in an order where every phase comes after its base (params order kept)."""
        order: list[str] = []
        while True:
            ready = [n for n, p in self.phases.items() if n not in order
                     and (p.init_from is None or p.init_from in order or p.init_from in self.checkpoints)]
            if not ready:
                return order
            order.extend(ready)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with duplicate keys is an error: last-wins would silently drop a setting."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {line}; first on line {seen[key]})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping; a missing file, bad syntax or a duplicate key raises ConfigError."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} invalid setting(s)"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union")))
        # Union members add their type name to the location; drop those for a readable key.
        key = ".".join(p for p in key.split(".") if p not in {"literal['all']", "int", "list[str]"})
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            lines.append(f"  - {key}: missing (params.yaml must set every key; see mmbert/presets/embedded.yaml)")
            continue
        if not key:  # a whole-config check; its message starts with the key
            lines.append(f"  - {message}")
            continue
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  - {key}{shown}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: str = "params.yaml") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path = "params.yaml") -> PipelineConfig:
    """Read and validate a params file. Checks against the corpus's languages live in
    mmbert.corpus.catalog, so that a stage's code is only what it runs."""
    path = Path(path)
    return parse_config(read_yaml(path), str(path))
