"""
A local look-alike of the MessageCentral Message Now API, for demos and tests.

Run it with ``python -m airflow_provider_messagecentral.sandbox --port 8099`` or in-process with
:class:`SandboxServer`.
"""

from __future__ import annotations

from airflow_provider_messagecentral.sandbox.config import SandboxConfig
from airflow_provider_messagecentral.sandbox.server import SandboxServer

__all__ = ["SandboxConfig", "SandboxServer"]
