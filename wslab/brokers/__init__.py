"""Pub/sub brokers behind the chat server: in-process now; Redis and NATS in lesson 06."""

from .base import Broker, Subscription
from .memory import MemoryBroker

__all__ = ["Broker", "MemoryBroker", "Subscription"]
