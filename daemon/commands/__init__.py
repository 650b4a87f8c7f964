"""One module per ``enhancerd`` sub-command, each with ``add_parser(subparsers)`` and ``run(args) -> int``.

Command modules import heavy dependencies (torch, SQLAlchemy) inside ``run`` so ``enhancerd --help`` stays fast.
"""
