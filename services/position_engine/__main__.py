"""`python -m services.position_engine`: the engine process on its own."""

from libs.common.service_process import service_main
from services.position_engine.service import run as serve

if __name__ == "__main__":
    service_main(serve)
