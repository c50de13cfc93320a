"""`python -m citybrain` runs the command-line interface."""

from citybrain.core.cli import main

main()
