"""langdec.core.urls hides a URL's credentials whole, even a password holding a raw '@'."""

from __future__ import annotations


def test_a_raw_at_sign_in_a_password_is_hidden_whole():
    from langdec.core.urls import without_secrets

    assert (
        without_secrets("postgresql://user:p@ss@db:5432/mlflow?sslmode=require")
        == "postgresql://user:***@db:5432/mlflow"
    )
    assert without_secrets("run --storage postgresql://u:a@b@c@h/d now") == "run --storage postgresql://u:***@h/d now"
