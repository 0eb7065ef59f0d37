"""The scheduler protocol: what `langdec ladder` asks of a scheduler, and how a scheduler's options dataclass declares
its own command-line flags.

A scheduler only places and retries the items' `langdec run-item` processes; MLflow, not the scheduler, says what is
done. A new scheduler is one module in this package and one line in the registry (`scheduling.BACKENDS`): the module
exposes `SCHEDULER`, an object with the attributes and methods of `Scheduler`, whose `Options` dataclass (a subclass
of `ItemOptions`) declares each flag on its field with `option(Flag(...))`. `langdec ladder` then takes its selector
flag and its options (`add_flags`, `options_from`), `--status` asks it about its submissions, and no command changes.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from langdec.core.errors import LangdecError

if TYPE_CHECKING:
    from langdec.orchestration.scheduling.item import Ladder
    from langdec.orchestration.scheduling.records import Pin, Seen

OPTION = "langdec.option"  # the key of a field's `Option` in its dataclass metadata


@dataclass(frozen=True)
class Flag:
    """One flag of `langdec ladder` as argparse takes it; its dest is argparse's own (`--time` -> `args.time`)."""

    name: str
    help: str | None = None
    type: Callable[[str], Any] | None = None
    action: str | None = None
    metavar: str | None = None
    nargs: str | None = None
    const: Any = None

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def add(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: Any) -> None:
        given = {
            "help": self.help,
            "type": self.type,
            "action": self.action,
            "metavar": self.metavar,
            "nargs": self.nargs,
            "const": self.const,
            "default": copy.copy(default),
        }
        # None is left to argparse, whose own default it is (a store_true flag's False stays False); the copy keeps
        # an appended flag's default list from being shared between parsers
        parser.add_argument(self.name, **{key: value for key, value in given.items() if value is not None})


@dataclass(frozen=True)
class Option:
    flag: Flag
    default: Any  # as the command line gives it (a list for an appended flag)
    convert: Callable[[Any], Any] | None  # what the command line gives -> the field's value

    def value(self, given: Any) -> Any:
        return self.convert(given) if self.convert is not None else given


def option(flag: Flag, default: Any = None, *, convert: Callable[[Any], Any] | None = None) -> Any:
    """A field of a scheduler's options that `flag` sets. `default` is the flag's; the field's is what `convert`
    makes of it. A field without `option` is no flag (it is set by the command, or keeps its default)."""
    made = Option(flag, default, convert)
    value = made.value(copy.copy(default))
    if isinstance(value, (list, dict, set)):
        return field(default_factory=lambda: copy.copy(value), metadata={OPTION: made})
    return field(default=value, metadata={OPTION: made})


@dataclass
class ItemOptions:
    """What every scheduler's options hold. Their flags are shared: each scheduler's item gets its GPUs and retries."""

    gpus_per_item: int = option(
        Flag("--gpus-per-item", type=int, help="GPUs each item gets; more than 1 trains with DDP (torchrun)"), 1
    )
    max_retries: int = option(
        Flag("--max-retries", type=int, help="attempts after a retryable failure (preemption, OOM, network)"), 2
    )
    supersede: bool = False  # --supersede or the ladder's own `supersede`: the command decides (`options_from`)


class Scheduler(Protocol):
    """One scheduler `langdec ladder` submits a ladder's items to (see the module's docstring to add one)."""

    name: str  # its registry name, and the `backend` of the submission records it writes
    selector: Flag  # the flag that chooses it: `--slurm`, `--ray [ADDRESS]`; an `Options` field may take its value
    group: str | None  # the title its own flags are listed under in `langdec ladder --help`
    Options: type[ItemOptions]

    def submit(
        self, ladder: Ladder, options: Any, *, pin: Pin | None = None, echo: Callable[..., None] = print
    ) -> dict:
        """Start every item of `ladder` (each one `langdec run-item` of the file as `pin` kept it); returns the record
        of the submission, saved with `records.save` for `--status`."""
        ...

    def waits(self, options: Any) -> bool:
        """Whether `langdec ladder` stays until every item ended (else it says how to follow them, and exits 0)."""
        ...

    def wait(self, record: dict, options: Any, *, echo: Callable[..., None] = print) -> bool:
        """Until no item of the submission is queued or running. False when the scheduler knows of a failure that must
        make `langdec ladder` exit 1 whatever MLflow's table says; the table decides otherwise."""
        ...

    def states(self, record: dict) -> dict[int, Seen]:
        """Item index -> what the scheduler says of it now (a record of this scheduler, maybe of another process)."""
        ...

    def describe(self, record: dict, index: int | None = None) -> str:
        """How `--status` names the submission (`index` None) or its task of item `index`."""
        ...


def add_flags(parser: argparse.ArgumentParser, schedulers: Sequence[Scheduler]) -> None:
    """The schedulers' selectors, the options they share (`ItemOptions`), then each one's own under its group's title.
    A flag two schedulers declare alike is added once; declared differently, it is a bug in one of them."""
    added: dict[str, Flag] = {}

    def put(target, flag: Flag, default: Any) -> None:
        if flag.name in added:
            if added[flag.name] != flag:
                raise TypeError(f"two schedulers declare {flag.name} differently")
            return
        added[flag.name] = flag
        flag.add(target, default)

    for scheduler in schedulers:
        put(parser, scheduler.selector, None)
    for made in _options(ItemOptions):
        put(parser, made.flag, made.default)
    for scheduler in schedulers:
        own = [made for made in _options(scheduler.Options) if added.get(made.flag.name) != made.flag]
        group = parser.add_argument_group(scheduler.group) if own and scheduler.group else parser
        for made in own:
            put(group, made.flag, made.default)


def chosen(args: argparse.Namespace, schedulers: Sequence[Scheduler]) -> Scheduler | None:
    """The scheduler the command line names by its selector flag, or None (the ladder runs here)."""
    picked = [s for s in schedulers if getattr(args, s.selector.dest, None) not in (None, False)]
    if len(picked) > 1:
        raise LangdecError(f"choose one scheduler: {' or '.join(s.selector.name for s in schedulers)}")
    return picked[0] if picked else None


def options_from(scheduler: Scheduler, args: argparse.Namespace, **fixed: Any) -> Any:
    """The scheduler's options as the command line set them; `fixed` sets fields the command decides."""
    given = {
        f.name: f.metadata[OPTION].value(getattr(args, f.metadata[OPTION].flag.dest))
        for f in fields(scheduler.Options)
        if OPTION in f.metadata and f.name not in fixed
    }
    return scheduler.Options(**given, **fixed)


def _options(options: type[ItemOptions]) -> list[Option]:
    return [f.metadata[OPTION] for f in fields(options) if OPTION in f.metadata]
