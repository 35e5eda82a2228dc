"""The sub-commands of ``abaw``: one module each, with ``add_parser(subparsers)`` and ``run(args) -> int``; heavy
imports stay inside ``run`` so that building the parser is fast (the list is in :mod:`abaw.cli`)."""
