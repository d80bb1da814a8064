"""Atomic, strict JSON writing."""

from __future__ import annotations

import json
import math

from videodd.io import write_json


def test_write_json_is_strict(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": math.nan, "b": [1.0, math.inf, (2, -math.inf)], "c": "x"})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.0, None, [2, None]], "c": "x"}
