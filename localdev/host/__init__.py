"""A local Functions host: runs a v2-model `function_app.py` as the Azure Functions host does.

HTTP functions are served on loopback, timers fire on their NCRONTAB schedules, and queue
triggers poll Storage (Azurite locally) honouring host.json's `extensions.queues`. A
development tool only: nothing deployed imports it.

    from localdev.host import LocalHost

    with LocalHost(Path("."), port=0) as host:
        print(host.base_url, host.functions)
"""

from localdev.host.host import LocalHost

__all__ = ["LocalHost"]
