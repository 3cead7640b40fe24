"""The only code that talks to Redis: it executes the effects steps yield."""

from ftctl.drivers.aio import AsyncDriver
from ftctl.drivers.connect import async_connect, client_url, connect, given_client, mask_url
from ftctl.drivers.interpreter import tuning, tuning_enabled
from ftctl.drivers.sync import SyncDriver

__all__ = [
    "AsyncDriver",
    "SyncDriver",
    "async_connect",
    "client_url",
    "connect",
    "given_client",
    "mask_url",
    "tuning",
    "tuning_enabled",
]
