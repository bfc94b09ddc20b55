"""Talking to Redis.  Knows no key names: callers hand in keys and Lua scripts.

urls.py      parse a Redis or Sentinel URL; check it; mask its password
errors.py    what the clients raise (one tuple for redis-py's, two for the hot path's)
fast.py      the lean hot-path client: one pre-packed EVALSHA, hiredis' reader
cluster.py   the hot path on a Redis Cluster: slot routing, MOVED/ASK, failover
sentinel.py  the hot path behind Sentinel: master discovery, failover
detect.py    what a URL names (one server, a cluster, a Sentinel set) and the client
             of that kind, lazy while the node does not answer yet
embedded.py  the embedded redis-server run in the state folder
"""
