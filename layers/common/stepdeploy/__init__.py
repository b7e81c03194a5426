"""stepdeploy shared runtime: models, decisions, adapters, observability and errors.

Shipped to Lambda as the shared layer (``layers/common``). Importing this package has no side
effects: no clients are created and no environment is read at import time.
"""

__version__ = "0.1.0"
