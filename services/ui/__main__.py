"""`python -m services.ui` (and `justtrades ui`): the UI service on UI_PORT."""

from libs.common.service_process import service_main
from services.ui.server import serve

if __name__ == "__main__":
    service_main(serve)
