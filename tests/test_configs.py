"""Every recipe in configs/ loads into a valid DistillConfig."""

from pathlib import Path

import pytest

from videodd.config import load_yaml
from videodd.distill import resolve_config, validate_config

CONFIGS = Path(__file__).parent.parent / "configs"
# recipes are the files of configs/<dataset>/; configs/datasets/ and configs/methods/ hold their bases
BASES = sorted([*(CONFIGS / "datasets").glob("*.yaml"), *(CONFIGS / "methods").glob("*.yaml")])
RECIPES = sorted(p for p in CONFIGS.glob("*/*.yaml") if p not in BASES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_recipe_loads(path):
    from videodd.config import from_dict
    from videodd.tune import TuneConfig

    data = load_yaml(str(path))
    method = data.pop("method")
    tune = data.pop("tune", None)  # a recipe's tune: mapping (configs/generic/) is a TuneConfig
    if tune is not None:
        from_dict(TuneConfig, tune, "tune")
    validate_config(resolve_config(method, data))


def test_there_are_recipes():
    assert RECIPES and BASES


def test_every_base_is_used_and_recipes_say_things_once():
    """Every file of configs/datasets/ and configs/methods/ is a base of some recipe (directly or through
    another base), and a base is never a recipe on its own (no ``ipc``)."""
    import yaml

    used = set()
    todo = list(RECIPES)
    while todo:
        path = todo.pop()
        bases = (yaml.safe_load(path.read_text()) or {}).get("base") or []
        for name in [bases] if isinstance(bases, str) else bases:
            base = (path.parent / name).resolve()
            if base not in used:
                used.add(base)
                todo.append(base)
    assert {p.resolve() for p in BASES} <= used
    for path in BASES:
        assert "ipc" not in load_yaml(path), path


def test_base_key_merges_mappings_and_refuses_loops(tmp_path):
    from videodd.config import ConfigError

    (tmp_path / "a.yaml").write_text("lr: 1\nobjective: {x: 1, y: 2}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nobjective: {y: 3}\nipc: 5\n")
    assert load_yaml(tmp_path / "b.yaml") == {"lr": 1, "objective": {"x": 1, "y": 3}, "ipc": 5}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_yaml(tmp_path / "loop.yaml")
    (tmp_path / "gone.yaml").write_text("base: [a.yaml, missing.yaml]\n")
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load_yaml(tmp_path / "gone.yaml")


def test_unknown_field_is_refused():
    from videodd.config import ConfigError

    with pytest.raises(ConfigError, match="unknown field"):
        resolve_config("dm", {"learning_rate": 1.0})
    with pytest.raises(ConfigError, match="expected an integer"):
        resolve_config("dm", {"ipc": "one"})


def test_demo_runs_the_shipped_dm_recipe_for_fewer_iterations():
    """``make demo``'s DM is configs/synth-actions/dm-ipc1.yaml cut short (the README says so): every other
    setting agrees, so the README's table is the recipe's."""
    import dataclasses

    from videodd.demo import DEMO_DM, DEMO_DM_ITERATIONS

    data = load_yaml(str(Path(__file__).parent.parent / "configs" / "synth-actions" / "dm-ipc1.yaml"))
    assert data.pop("method") == "dm"
    recipe = resolve_config("dm", data)
    assert recipe.iterations > DEMO_DM_ITERATIONS
    assert dataclasses.replace(recipe, iterations=DEMO_DM_ITERATIONS) == resolve_config("dm", {**DEMO_DM, "ipc": 1})


def test_published_frepo_recipes_step_pixels_and_labels_with_one_adam_lr():
    """FRePo (and the video port) optimise the pixels and the labels with one adaptive optimiser and
    one lr; the published-setting recipes say so rather than an SGD step nobody published."""
    paths = [p for p in RECIPES if p.name.startswith("frepo-") and p.parent.name != "synth-actions"]
    assert len(paths) == 8
    for path in paths:
        cfg = resolve_config("frepo", {k: v for k, v in load_yaml(str(path)).items() if k != "method"})
        assert cfg.optimizer == "adam", path
        assert cfg.parametrization["label_lr"] == cfg.lr, path
