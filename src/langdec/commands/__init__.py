"""The CLI's commands by stage: each module owns its commands' arguments (`register`) and their entries;
`process` owns what the langdec process does around any command."""

from __future__ import annotations

from langdec.commands import cluster, data, evaluate, registry, runs, train

MODULES = (data, train, evaluate, registry, runs, cluster)
