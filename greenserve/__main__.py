"""``python -m greenserve``: the same entry point as the console script."""

from greenserve.cli import main

if __name__ == "__main__":
    main()
