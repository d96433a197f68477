"""
``[core] hostname_callable`` of the local cluster: each Celery worker reports its own name.

On a real deployment every worker is its own machine or pod, so the task instances' ``hostname`` tells the
workers apart. The local cluster runs both workers on one machine; each gets ``MC_CLUSTER_HOSTNAME`` (e.g.
``worker1``) in its environment, and this callable returns it (other processes: the machine's FQDN, Airflow's
default).
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("MC_CLUSTER_HOSTNAME") or socket.getfqdn()
