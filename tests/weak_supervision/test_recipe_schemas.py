"""rule_denoising's config schema, through the launcher: a bad value is one line and leaves nothing."""

import re

import pytest

from metaloss.core.harness.config import flat_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.core.harness.launch import main as launch


@pytest.mark.parametrize("override, message", [
    ("optim.lr=0", r"optim.lr: expected a number greater than 0, got 0.0"),
    ("optim.epochs=-1", r"optim.epochs: expected a number greater than 0, got -1"),
    ("model.dropout=1", r"model.dropout: expected a number less than 1, got 1.0"),
    ("model.hidden=-1", r"model.hidden: expected a number greater than or equal to 0, got -1"),
    ("gm.quality_guide=1.5", r"gm.quality_guide: expected a number less than or equal to 1, got 1.5"),
    ("amal.lr=[100,0]", r"amal.lr\[1\]: expected a number greater than 0, got 0.0"),
    ("amal.mode=exactt", r"amal.mode: expected 'exact', .* got 'exactt'"),
    ("features.kind=glove", r"features.kind: expected 'auto', .* got 'glove'"),
    ("threads=0", r"threads: expected a number greater than 0, got 0"),
    ("seeds=[]", r"seeds: expected at least 1 item"),
    ("trackers=[tb]", r"trackers\[0\]: expected 'tensorboard', .* got 'tb'"),
])
def test_rule_denoising_refuses_values_out_of_range(refused, override, message):
    assert re.search(message, refused("rule_denoising", override)), override


def test_every_key_has_a_meaning_in_show_config(capsys):
    recipe = discover_recipes(only="rule_denoising")["rule_denoising"]
    defaults = recipe.load_defaults()
    rows = recipe.describe(defaults)
    assert [key for key, _, _ in rows] == list(flat_config(defaults))
    assert [key for key, _, meaning in rows if not meaning] == []
    assert launch(["rule_denoising", "--show-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"optim.lr = [0-9.e-]+ +# learning rate", line) for line in lines)
