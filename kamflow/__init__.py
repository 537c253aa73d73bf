"""kamflow: key-account retention orchestration for telecom operators.

The pipeline is laid out as top-level packages, one per stage:
``intake`` → ``expectations`` → ``scoring`` → ``rules`` → ``worklist`` → ``notifications``,
wired together by ``flows`` and driven by the ``kamflow`` CLI. This package holds what every
stage shares: settings (where state lives), the error types and the sample-data generator.
"""

__version__ = "0.1.0"
