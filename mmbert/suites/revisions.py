"""The hub revision each benchmark dataset is read at.

Commits were taken from public code that pins them (no network here to list the hub's
history). Four repositories still hold a loading script, which datasets >= 4 refuses; they
are read from the hub's parquet export instead (layout "export" in tasks.py), at a commit of
that branch where one is known. Where no commit could be found offline the entry says so:
it reads the branch named, which can move; replace it by a commit once you have network.
"""

from __future__ import annotations

EXPORT_BRANCH = "refs/convert/parquet"
REVISIONS: dict[str, str] = {
    "nyu-mll/glue": "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
    "facebook/xnli": "b8dd5d7af51114dbda02c0e3f6133f332186418e",
    "google-research-datasets/paws-x": "4cd8187c404bda33cb1f62b49b001115862acf37",
    "cambridgeltl/xcopa": "042f78955ba48e6404616762fa6e05e839c3907a",
    "aps/super_glue": "3de24cf8022e94f4ee4b9d55a6f539891524d646",
    "rajpurkar/squad": "7b6d24c440a36b6815f21b70d25016731768db1f",
    "google/xquad": "51adfef1c1287aab1d2d91b5bead9bcfb9c68583",
    # The commit that converted the repository to parquet (udpos.<Language>/<split>-*.parquet).
    "google/xtreme": "a357451849b1356ba7ebfe0715b938be15422c30",
    # Parquet-export commit ("Delete old duckdb index files"); main still holds the script.
    "juletxara/tydiqa_xtreme": "ff81d0dce9a0754b5e618cb6f3bcbe1c86ebabfc",
    # Script repositories without a known export commit: the export branch itself.
    "facebook/mlqa": EXPORT_BRANCH,
    "allenai/social_i_qa": EXPORT_BRANCH,
    "fgaim/tiquad": EXPORT_BRANCH,
    # Parquet repositories for which no commit was found offline.
    "unimelb-nlp/wikiann": "main",
    "alexandrainst/foqa": "main",
    "sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1": "main",
}


def revision(hub_id: str) -> str:
    return REVISIONS[hub_id]


def layout(hub_id: str) -> str:
    """Where the files are: in the repository, or in the parquet export of a script repository."""
    exported = {"juletxara/tydiqa_xtreme", "facebook/mlqa", "allenai/social_i_qa", "fgaim/tiquad"}
    return "export" if hub_id in exported else "repo"
