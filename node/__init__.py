"""The floor under the parties: what the facilitator, validator and miner processes share.

Channels consumers with ``type → handler`` dispatch, the node's identity, periodic tasks, the
registry client, the in-memory and Redis channel layers, HTTP timeouts and signed-request checks.
``node`` imports ``protocol`` and Django but never a party (facilitator, validator, miner);
``grid`` sits on top and wires the parties together (settings, ASGI, the ``grid`` command).
"""
