"""Whether an output stream takes colour and live redrawing: rich's reading of the terminal and environment."""

from __future__ import annotations

from typing import TextIO


def colour_terminal(stream: TextIO) -> bool:
    """A terminal that takes escape codes: a tty, not ``TERM=dumb``, no ``NO_COLOR`` (``FORCE_COLOR`` and
    ``TTY_COMPATIBLE`` as rich reads them). Anywhere else fluxparity writes plain text, no escape code at all."""
    from rich.console import Console

    console = Console(file=stream)
    return console.is_terminal and not console.is_dumb_terminal and not console.no_color \
        and console.color_system is not None
