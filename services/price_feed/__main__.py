"""`python -m services.price_feed` (and `justtrades price-feed`): the price feed on its own."""

from libs.common.service_process import service_main
from services.price_feed.service import run

if __name__ == "__main__":
    service_main(run)
