"""`python -m services.position_engine`: the engine process on its own."""

import sys

from libs.common.config import load_settings
from libs.common.logs import setup_logging
from services.position_engine.service import run

if __name__ == "__main__":
    settings = load_settings()
    setup_logging(settings.log_level)
    if not settings.database_url or not settings.redis_url:
        sys.exit("DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)")
    run(settings)
