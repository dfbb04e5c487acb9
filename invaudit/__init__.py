"""invaudit: audit classifiers for excessive invariance and excessive sensitivity."""

__version__ = "0.1.0"

from .errors import InvauditError  # noqa: E402
from .models import build  # noqa: E402
from .models.checkpoint import load_model  # noqa: E402

__all__ = ["InvauditError", "__version__", "build", "load_model"]
