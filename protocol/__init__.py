"""Everything two Gridmarket parties share: messages, job spec, keys, signatures, handshake.

Nothing here imports Django or any party (DESIGN.md §2); the SDK and the executor depend on it.
"""
