"""The I/O-free core: every rule of the chat and the lessons' protocols, and no I/O.

Nothing here opens a socket, starts a task, reads a clock it was not given or imports
asyncio, websockets, starlette or widgets (``tests/test_layers.py`` checks). Each module
takes inputs and returns what to do; the asyncio shells in :mod:`wslab.servers`,
:mod:`wslab.clients` and :mod:`wslab.brokers` carry it out. So every rule can be tested,
and read, without a network.
"""
