"""The `bridge` command's exit codes, shared by its handlers (cli_local.py, cli_serve.py) and cli.py's `main`."""

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
