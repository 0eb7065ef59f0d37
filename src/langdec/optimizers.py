"""Which optimiser a run uses: a transformers `optim` name, or any optimiser pytorch-optimizer offers.

`training.optimizer` is looked up first among transformers' names (adamw_torch,
paged_adamw_8bit, ...), then among pytorch-optimizer's (sophiah, lion, adan, ...),
so Sophia is the maintained package's implementation, never a copy. Extra keyword
arguments come from `training.optimizer_args` and are logged with the run.
Second-order optimisers (SophiaH, AdaHessian) estimate the Hessian from the
gradient's own graph, so their backward pass must keep it (`needs_graph`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .errors import LangdecError, did_you_mean

# optimisers whose step() differentiates the gradient again (Hutchinson estimates)
_SECOND_ORDER = {"sophiah", "adahessian"}


@dataclass(frozen=True)
class OptimizerChoice:
    name: str
    source: str  # "transformers" | "pytorch_optimizer"
    needs_graph: bool = False


@functools.lru_cache(maxsize=1)
def _transformers_names() -> frozenset[str]:
    from transformers.training_args import OptimizerNames

    return frozenset(o.value for o in OptimizerNames)


@functools.lru_cache(maxsize=1)
def _package_names() -> frozenset[str]:
    try:
        import pytorch_optimizer
    except ImportError:
        return frozenset()
    return frozenset(str(n).lower() for n in pytorch_optimizer.get_supported_optimizers())


def resolve(name: str) -> OptimizerChoice:
    key = name.lower()
    if key in _transformers_names():
        return OptimizerChoice(key, "transformers")
    if key in _package_names():
        return OptimizerChoice(key, "pytorch_optimizer", key in _SECOND_ORDER)
    if not _package_names():
        raise LangdecError(f"optimizer {name!r} is not a transformers optimizer and pytorch-optimizer is not installed "
                           "(pip install pytorch-optimizer)")
    raise did_you_mean("optimizer", name, sorted(_transformers_names() | _package_names()))


def build(choice: OptimizerChoice, params, lr: float, weight_decay: float, extra: dict[str, Any]):
    """An optimiser from pytorch-optimizer over the trainable parameters."""
    import pytorch_optimizer

    cls = pytorch_optimizer.load_optimizer(choice.name)
    kwargs = {"lr": lr, "weight_decay": weight_decay, **extra}
    try:
        return cls(params, **kwargs)
    except TypeError as exc:
        raise LangdecError(f"optimizer {choice.name}: {exc}; check training.optimizer_args") from None
