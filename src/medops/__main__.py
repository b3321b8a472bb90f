"""`python -m medops`: the same as the `medops` command."""

from medops.cli.main import main

main()
