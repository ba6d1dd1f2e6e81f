"""Asyncio clients: the resuming chat client, the fleet dashboard's client, and the probes
lesson 01 uses to show a handshake byte for byte."""

from .chat import ChatClient, Handshake, capture_handshake, exchange
from .fleet import FleetClient

__all__ = ["ChatClient", "FleetClient", "Handshake", "capture_handshake", "exchange"]
