"""Just Trades services, one package each; `services.cli` is the `justtrades` command."""
