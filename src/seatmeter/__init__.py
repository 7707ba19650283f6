"""seatmeter: billing and real-time spend control for Enterprise AI assistant plans."""

from seatmeter.domain.errors import SeatmeterError
from seatmeter.domain.money import Money

__all__ = ["Money", "SeatmeterError", "__version__"]
__version__ = "0.1.0"
