"""A hardened HTTP/1.1 server on the standard library, knowing nothing of what it serves.

``HardenedServer`` (server.py) answers a ``RouteTable`` (routing.py) one thread per connection,
with every resource a client can make it hold bounded: heads read within a deadline and size
caps (head.py), bodies within a deadline, a per-route limit and a shared memory budget
(handler.py, budget.py), connections over the cap refused at once (busy.py), ``Host`` checked on
loopback (hosts.py), compressed bodies inflated within bounds (encoding.py), JSON decoded within
value and container caps (jsonbody.py), log lines written off the request path (logqueue.py),
worker processes supervised (workers.py). Errors are ``HTTPError`` (errors.py), answered as
``{"error": ...}`` JSON (messages.py).
"""
