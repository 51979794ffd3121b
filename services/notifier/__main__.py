"""`python -m services.notifier` (and `justtrades notifier`): the notifier process."""

from libs.common.service_process import service_main
from services.notifier.service import run

if __name__ == "__main__":
    service_main(run)
