"""``python -m dexgrasp_cli``: the same as the ``dexgrasp`` command."""

from dexgrasp_cli.app import main

if __name__ == "__main__":
    main()
