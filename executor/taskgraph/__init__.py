"""The executor as ArmoniK's polling agent: a session's worker kept alive, the Agent service it calls.

- :mod:`executor.taskgraph.agent`: the Agent service on a unix socket, for the task running now;
- :mod:`executor.taskgraph.polling_agent`: the worker's life, and one task after another through it.

Where a task's inputs come from and its outputs go is the :class:`~executor.taskgraph.agent.Upstream`
(the chain up to the facilitator's control plane); docs/control-plane.md describes the whole.
"""
