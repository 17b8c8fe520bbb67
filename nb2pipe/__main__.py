"""``python -m nb2pipe``."""

from .cli import run

run()
