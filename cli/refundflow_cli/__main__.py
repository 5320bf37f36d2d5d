"""``python -m refundflow_cli``: the same as the ``refundflow`` console script."""

from refundflow_cli.app import main

if __name__ == "__main__":
    main()
