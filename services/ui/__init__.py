"""UI service: pages, the JSON API, login, and live updates."""
