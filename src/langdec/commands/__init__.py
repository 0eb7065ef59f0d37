"""The CLI's commands by stage: each module owns its commands' arguments (`register`) and their entries."""

from __future__ import annotations

from . import cluster, data, evaluate, registry, runs, train

MODULES = (data, train, evaluate, registry, runs, cluster)
