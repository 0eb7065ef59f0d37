"""`langdec`: one command per stage of the study. Every MLproject entry point calls this.

The commands live with their stage in `langdec.commands`; this module builds the parser from them
and dispatches. Errors a user can fix print one line naming the file/row/key and what to do, and
exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import sys

from langdec import commands
from langdec.commands import process
from langdec.core import failures
from langdec.core.errors import EXIT_CONFIG, EXIT_RETRY, LangdecError
from langdec.core.urls import scrub, scrub_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="langdec", description="The Language Decoded study, stage by stage.")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --quiet must not reset `langdec --quiet CMD`
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)  # every command takes --quiet

    for module in commands.MODULES:
        module.register(command)
    return p


def main(argv: list[str] | None = None) -> int:
    process.quiet_libraries()
    scrub_logging()  # a store URL's password never reaches the terminal through a library's log line
    args = parser().parse_args(argv)
    entry_run = process.take_entry_run()
    try:
        return args.func(args)
    except LangdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return failures.exit_code(exc)  # EXIT_RETRY for a preemption, else EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        full = process.disk_full(exc)
        if full is not None:
            print(
                f"error: no space left on the device{full}; free some space and re-run the same command (outputs are "
                "written whole or not at all, finished stages are reused)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        reason = failures.retry_reason(exc)
        if reason is None:
            raise
        from langdec.core.paths import default_tracking_uri

        detail = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", default_tracking_uri())[
            :300
        ]
        print(
            f"error: {detail} ({reason}); this may succeed when run again: finished stages are reused and training "
            f"resumes from its last checkpoint (exit status {EXIT_RETRY} tells a scheduler to retry)",
            file=sys.stderr,
        )
        return EXIT_RETRY
    finally:
        if entry_run:
            process.retire_entry_run(entry_run, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
