"""`python -m ragctl` runs the command line."""

from ragctl.cli.main import main

main()
