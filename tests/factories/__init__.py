"""Model factories for the ``py:package.module:function`` source (tests/test_model_sources.py)."""
