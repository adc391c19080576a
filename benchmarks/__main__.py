"""``python -m benchmarks``: the loopback or the remote profile, as ``--profile`` says."""

import sys

from .harness import main_loopback, parse_args
from .remote import main_remote


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return main_remote(args) if args.profile == "remote" else main_loopback(args)


sys.exit(main())
