"""MLflow: runs and their keys, the model registry and its promotion policy, saved views, and the
study's published artifacts imported as runs."""
