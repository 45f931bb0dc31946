"""The job gateway: an HTTPS + websocket reverse proxy in front of one streaming job (DESIGN.md §5).

The wire contract is :mod:`protocol.streaming`; this package is its server side:
:mod:`~executor.gateway.auth` (request authentication), :mod:`~executor.gateway.forward`
(forwarding and reply sealing), :mod:`~executor.gateway.relay` (the websocket relay) and
:mod:`~executor.gateway.server` (:class:`JobGateway`, which wires them).

* **TLS.** A fresh self-signed certificate (:mod:`executor.certs`) whose sha256 goes into
  :attr:`JobGateway.readiness`; the miner signs that, the client pins the certificate.
* **Requests.** Every request must carry the headers of :func:`protocol.requests.sign_request`
  made with the client's streaming key and :data:`~protocol.streaming.REQUEST_PURPOSE`. The
  headers (presence, key, timestamp, nonce format, replay) are checked before the body is read,
  so unsigned floods cost nothing; the body is then spooled (memory up to 1 MiB, then a temporary
  file; over ``max_request_bytes`` → 413) while hashed, and the signature is checked over its
  digest, with the freshness of the moment the headers arrived (a slow upload does not go stale).
  Refusals are 401 ``{"code", "message"}`` (``missing_signature``, ``bad_signature``,
  ``stale_request``, ``bad_nonce``, ``replayed``, ``wrong_key``); the job never sees them.
  Nonces are remembered for ``2 × MAX_SKEW_S``.
* **Forwarding.** Same method, raw path, raw query and body to ``http://127.0.0.1:<upstream>``,
  minus hop-by-hop headers, ``Host`` and every ``X-Grid-*`` header. Paths under ``/_grid/`` are
  the gateway's own: ``POST /_grid/terminate`` sets :attr:`JobGateway.terminated` (202).
* **Replies** are signed with the job key (:func:`protocol.streaming.sign_reply`):

  - a reply with ``Content-Length`` ≤ ``buffer_limit`` that is not ``text/event-stream`` is
    *buffered*: the job's headers and body plus ``X-Grid-Request-Digest``,
    ``X-Grid-Reply-Digest`` (sha256 of the body as sent) and ``X-Grid-Reply-Signature``;
  - anything else is *streamed*: ``X-Grid-Framing: grid-frames/1``, ``X-Grid-Request-Digest``,
    then DATA frames of the job's bytes as they come and one END frame holding the
    :class:`~protocol.streaming.ReplySeal` (``complete=False`` with an ``error`` when the job's
    reply broke off). A job's ``Content-Encoding`` would not apply to the framed body, so on a
    streamed reply it is moved to ``X-Grid-Content-Encoding`` (it applies to the DATA bytes);
  - the job unreachable → 502 ``{"code": "job_unreachable"}``, signed like a buffered reply
    (the gateway's own errors after a verified request are all signed that way).

* **Websockets.** The upgrade GET is verified like any request, then the gateway connects to the
  job's websocket at the same path and relays: client → job as is, job → client prefixed
  (``"d"`` / ``b"d"``), every message in the :class:`~protocol.streaming.Transcript`.
  **Ending a session:** the client sends the text message :data:`~protocol.streaming.WS_END`
  (``"\\x00grid:end"``, never forwarded to the job); the gateway stops relaying, sends
  ``"s" + seal`` (status 101, ``reply_digest`` = the transcript, ``complete=True``) and closes
  with 1000. When the job closes, the gateway sends the seal (``complete=True``) and closes with
  the job's code; when the job's connection breaks, the seal says ``complete=False`` and the
  close code is 1011; when the gateway stops, ``complete=False`` and 1001. A client that closes
  the websocket itself (or vanishes) gets no seal: nothing can be sent after its close frame.
"""

from executor.gateway.server import JobGateway

__all__ = ["JobGateway"]
