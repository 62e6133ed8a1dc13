"""This domain's background loops, run by app.worker (in `leadheat serve` and `leadheat worker`)."""

from app.worker import BackgroundLoop

LOOPS: list[tuple[str, BackgroundLoop]] = []
