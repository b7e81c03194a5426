"""The local AWS world: stepdeploy's real ASL and handler code against an embedded moto.

Never deployed to Lambda. ``World`` is the entry point for tests, the demo and the local server.
"""

from .world import World

__all__ = ["World"]
