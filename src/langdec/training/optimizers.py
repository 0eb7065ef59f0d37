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
from typing import TYPE_CHECKING, Any

from langdec.core.errors import LangdecError
from langdec.core.registry import Registry
from langdec.models.effective import effective_optimizer
from langdec.models.loading import effective_precision

if TYPE_CHECKING:
    from langdec.core.config import TrainingConfig

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


@functools.lru_cache(maxsize=1)
def choices() -> Registry[OptimizerChoice]:
    """Every optimiser by name; a name both offer is transformers' (looked up first, as the study's were)."""
    package = {n: OptimizerChoice(n, "pytorch_optimizer", n in _SECOND_ORDER) for n in _package_names()}
    return Registry("optimizer", {**package, **{n: OptimizerChoice(n, "transformers") for n in _transformers_names()}})


def resolve(name: str) -> OptimizerChoice:
    key = name.lower()
    if key not in choices() and not _package_names():
        raise LangdecError(
            f"optimizer {name!r} is not a transformers optimizer and pytorch-optimizer is not installed "
            "(pip install pytorch-optimizer)"
        )
    if key not in choices():
        raise choices().unknown(name)
    return choices().get(key)


def training_precision(t: TrainingConfig) -> str:
    """The precision a training section runs at on this machine: a second-order optimiser's backward pass keeps
    its graph, which fp16 loss scaling cannot take."""
    return effective_precision(t.precision, second_order=resolve(effective_optimizer(t.optimizer)).needs_graph)


def build(choice: OptimizerChoice, params, lr: float, weight_decay: float, extra: dict[str, Any]):
    """An optimiser from pytorch-optimizer over the trainable parameters."""
    import pytorch_optimizer

    cls = pytorch_optimizer.load_optimizer(choice.name)
    kwargs = {"lr": lr, "weight_decay": weight_decay, **extra}
    try:
        return cls(params, **kwargs)
    except TypeError as exc:
        raise LangdecError(f"optimizer {choice.name}: {exc}; check training.optimizer_args") from None
