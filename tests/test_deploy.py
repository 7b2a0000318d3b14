"""deploy/ray-cluster.yaml, the README's worked example of the paper presets on a GPU cluster,
is a configuration Ray's own launcher (`ray up`) accepts: filled out with its defaults and
validated against its schema, as `ray up` does before it starts anything."""

from __future__ import annotations

import copy

import pytest
import yaml

from helpers import REPO


def test_the_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "deploy" / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any("pip install --quiet torch==2.13.0" in c for c in config["setup_commands"])  # the Makefile's order


def test_a_broken_cluster_yaml_is_caught():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "deploy" / "ray-cluster.yaml").read_text())
    config["available_node_types"]["gpu-8xh100"]["min_workers"] = "one"
    with pytest.raises(Exception, match="one"):
        validate_config(prepare_config(config))
