"""`justtrades chaos`: the platform's promises shown under faults (kill -9 of every service, Redis
and PostgreSQL crashes) with a steady flow of webhooks and ticks."""
