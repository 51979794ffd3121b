"""Just Trades services, one package each; `tools.cli` is the `justtrades` command."""
