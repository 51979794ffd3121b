"""The operator's tools around the services: the `justtrades` command, the supervisor that runs
every service, the benchmark and the chaos run."""
