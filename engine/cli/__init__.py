"""The ``streamlet`` command (run, checkpoints, demo)."""

from .main import main as main
