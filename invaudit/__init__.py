"""invaudit: audit classifiers for excessive invariance and excessive sensitivity."""

from .errors import InvauditError
from .models import build

__version__ = "0.1.0"

__all__ = ["InvauditError", "__version__", "build"]
