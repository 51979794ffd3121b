"""`python -m services.ui` (and `justtrades ui`): the UI service on UI_PORT."""

from __future__ import annotations

import sys

from libs.common.config import load_settings
from libs.common.logs import setup_logging
from services.ui.server import serve


def main() -> None:
    settings = load_settings()
    if not settings.database_url or not settings.redis_url:
        sys.exit("DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)")
    setup_logging(settings.log_level)
    serve(settings)


if __name__ == "__main__":
    main()
