"""`python -m services.gateway`: the webhook gateway on its own, settings from the environment."""

from libs.common.service_process import service_main
from services.gateway.server import serve

if __name__ == "__main__":
    service_main(serve)
