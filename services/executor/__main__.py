"""`python -m services.executor` (and `justtrades executor`): one executor worker process."""

from libs.common.service_process import service_main
from services.executor.service import run

if __name__ == "__main__":
    service_main(run)
