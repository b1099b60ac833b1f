"""The ``mienet`` command-line tool.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so
``mienet synth --help`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mienet.errors import MienetError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mienet.data.synth", "write the synthetic standing-long-jump videos"),
    "extract-frames": ("mienet.data.frames", "decode videos into numbered image folders"),
    "make-annotations": ("mienet.data.annotations", "write TSN frame-list annotations"),
    "bench-extract": ("mienet.data.bench", "measure frame extraction speed against ffmpeg"),
    "model-info": ("mienet.models.info", "parameters and GFLOPs of a model variant"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mienet", description="Reproduce, ablate and tune MIE-Net from raw videos to paper tables.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        # The arguments are added lazily below, only for the command asked for.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Find the command first so that only its module is imported.
    known, _ = parser.parse_known_args(argv) if argv and argv[0] in COMMANDS else (None, None)
    if known is None:
        parser.parse_args(argv)  # prints usage / help / error and exits
        return 2
    module = importlib.import_module(known._module)
    sub_parser = parser._subparsers._group_actions[0].choices[known.command]  # noqa: SLF001
    module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except MienetError as exc:
        print(f"mienet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mienet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
