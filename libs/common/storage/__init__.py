"""PostgreSQL: the models, sessions and migrations, and the embedded servers for a bare machine."""
