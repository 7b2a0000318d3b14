"""The `reproduce-mmbert` flow: validate params, start one local Ray cluster (unless one is
given), run the DVC stages wave by wave (one task run each), report where results are.

    python -m flows.reproduce               # the whole pipeline on params.yaml
    python -m flows.reproduce --only-eval   # re-run only the evaluation stages
    python -m flows.reproduce --only-eval --suites glue xtreme   # only these suites
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from prefect import flow, get_run_logger

from flows.plan import check_dvc_matches, evaluation_stages, stage_waves
from mmbert.config import ConfigError, PipelineConfig, load_config
from mmbert.corpus.catalog import check_corpus_fits
from mmbert.schedules import curriculum
from tasks.dvc_stage import run_dvc_stage
from tasks.ray_head import local_ray_cluster


def _needs_ray(waves: list[list[str]], cfg: PipelineConfig) -> bool:
    """Mix and training stages, and the paper suites that are enabled, run on the cluster."""
    return any(stage.startswith(("mix@", "train@")) or (stage.startswith("eval-")
                                              and getattr(cfg.suites, stage.removeprefix("eval-")).enabled)
               for wave in waves for stage in wave)


def _all_up_to_date(repo: Path, waves: list[list[str]]) -> bool:
    """Whether DVC finds every stage of the run up to date (each runs as a single item), so
    that a cached re-run (an eval-only run after a finished pipeline) starts no cluster."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return not dvc.status(targets=[stage for wave in waves for stage in wave])


def publish_plan(cfg: PipelineConfig) -> None:
    """The run's cost plan (mmbert.plan, 8 x H100 at the assumed MFU), the flow's first artifact."""
    from prefect.artifacts import create_markdown_artifact

    from mmbert.plan import Cluster, plan, render

    create_markdown_artifact(render(plan(cfg, Cluster())), key="cost-plan",
                             description="what this params.yaml costs on 8 x H100 (python -m mmbert.plan for others)")


def _is_eval(stage: str) -> bool:
    return stage == "eval" or stage.startswith("eval-")


@flow(name="reproduce-mmbert", log_prints=True)
def reproduce_mmbert(repo_dir: str = ".", only_eval: bool = False, force_eval: bool = False,
                     ray_address: str | None = None, suites: list[str] | None = None) -> dict[str, object]:
    """Run the pipeline (or only its evaluation) in the DVC repo at `repo_dir`. `suites`: the
    evaluations to run with only_eval (embedded, glue, xtreme, lowres_qa, mteb); default: the
    embedded one and the paper suites enabled in params.yaml."""
    logger = get_run_logger()
    repo = Path(repo_dir).resolve()
    cfg = load_config(repo / "params.yaml")  # bad params fail here, before any stage
    check_corpus_fits(cfg, str(repo / "params.yaml"))
    check_dvc_matches(cfg, repo)
    publish_plan(cfg)
    logger.info("params.yaml: %d phases, model hidden %d x %d layers; curriculum:", len(cfg.phases),
                cfg.model.hidden_size, cfg.model.num_hidden_layers)
    for row in curriculum(cfg):
        logger.info("  %(phase)s (from %(init_from)s): mask %(mask_rate).2f, tau %(temperature).1f, languages "
                    "%(languages)s, %(tokens)d tokens of %(seq_len)d, RoPE theta %(rope_theta_global).0f, "
                    "peak lr %(peak_lr).1e", row)
    waves = [evaluation_stages(cfg, suites)] if only_eval else stage_waves(cfg)
    # A retry re-runs `dvc repro` of the stage: DVC skips it if it finished, a training
    # stage continues from its last checkpoint.
    stage_task = run_dvc_stage.with_options(retries=cfg.runtime.stage_retries,
                                            retry_delay_seconds=cfg.runtime.retry_delay_seconds)
    outcome: dict[str, str] = {}
    start_cluster = not ray_address and _needs_ray(waves, cfg)
    if start_cluster and not force_eval and _all_up_to_date(repo, waves):
        logger.info("DVC finds all %d stages up to date: no Ray cluster is started", sum(map(len, waves)))
        start_cluster = False
    with local_ray_cluster() if start_cluster else nullcontext() as head:
        for wave in waves:
            address = None
            if _needs_ray([wave], cfg) and (ray_address or head):
                address = ray_address or head.address
                logger.info("stages join the Ray cluster at %s", address)
            futures = [stage_task.submit(stage, str(repo), cfg.output_dir, address,
                                            force=force_eval and _is_eval(stage)) for stage in wave]
            outcome.update({stage: future.result() for stage, future in zip(wave, futures)})
    outputs = repo / cfg.output_dir
    results = {"stages": outcome, "report": str(outputs / "eval" / "report.md"),
               "metrics": str(outputs / "eval" / "metrics.json"), "merged_model": str(outputs / "merge" / "model"),
               "bench": str(outputs / "bench" / "results.json")}
    ran = [s for s, state in outcome.items() if state == "ran"]
    print(f"{len(ran)} of {len(outcome)} stages ran ({', '.join(ran) or 'none: all up to date'})")
    print(f"Evaluation report: {results['report']}\nMetrics: {results['metrics']}\n"
          f"Merged model: {results['merged_model']}\nThroughput: {results['bench']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC repository (default: here)")
    parser.add_argument("--only-eval", action="store_true", help="run only the evaluation stage")
    parser.add_argument("--force-eval", action="store_true", help="re-run evaluation even if DVC finds it up to date")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster instead of starting one")
    parser.add_argument("--suites", nargs="+", default=None,
                        help="with --only-eval: the evaluations to run (embedded glue xtreme lowres_qa mteb)")
    parser.add_argument("--plan", action="store_true",
                        help="print what the run costs on 8 x H100 (python -m mmbert.plan for another cluster); run nothing")
    args = parser.parse_args()
    if args.plan:
        from mmbert.plan import main as plan_main

        plan_main(["--params", str(Path(args.repo) / "params.yaml")])
        return
    try:
        reproduce_mmbert(repo_dir=args.repo, only_eval=args.only_eval, force_eval=args.force_eval,
                         ray_address=args.ray_address, suites=args.suites)
    except ConfigError as exc:  # the flow run is marked failed; the shell gets the message alone
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
