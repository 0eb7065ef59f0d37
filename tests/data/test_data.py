"""data: the digest that keys a condition's rows, and the tags a job's runs carry."""

from __future__ import annotations

import pandas as pd

from langdec.core import config
from langdec.data import stage as data


def _frame(rows):
    return pd.DataFrame(rows, columns=["idx", "code"])


def test_the_digest_depends_on_rows_and_split_not_on_order():
    train, val = _frame([(1, "a"), (2, "b")]), _frame([(3, "c")])
    digest = data.data_digest(train, val)
    assert digest == data.data_digest(train.iloc[::-1], val)  # row order does not matter
    assert digest != data.data_digest(_frame([(1, "a")]), _frame([(2, "b"), (3, "c")]))  # the split does
    assert digest != data.data_digest(_frame([(1, "a"), (2, "B")]), val)  # and every character of the code
    assert len(digest) == 16


def test_job_tags_name_the_cell_and_its_arm():
    profile = config.load_profile("smoke")
    tags = data.job_tags(profile, config.Job("2", "zh", "5k", 42, "lr1e-4"))
    assert tags == {
        "condition": "2",
        "lang": "zh",
        "tier": "5k",
        "seed": "42",
        "profile": "smoke",
        "model_id": "smoke",
        "arm": "lr1e-4",
    }
    assert data.job_tags(profile, config.Job("1", None, "5k", 42))["lang"] == "en"
