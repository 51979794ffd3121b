"""Local stand-ins for outside services, speaking their real wire protocols over real sockets.

Tests point the real clients at them; `python -m simulators.<name>` runs one for a demo.
"""
