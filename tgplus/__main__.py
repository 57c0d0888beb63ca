"""`python -m tgplus` runs the CLI."""

from tgplus.cli import main

if __name__ == "__main__":
    main()
