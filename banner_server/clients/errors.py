"""What the Redis clients raise, in one place.

The hot path's clients (fast, cluster, sentinel) raise FastRedisError when Redis
cannot answer (down, timeout, failover in progress) and FastReplyError, a subclass,
for an error reply from a reachable Redis.  redis-py's clients of every kind raise
CLIENT_ERRORS: RedisCluster's own exceptions (slot not covered, no node reachable at
start) are not RedisError.  `REDIS_ERRORS` is everything either kind raises.
"""

from __future__ import annotations

import redis
from redis.exceptions import RedisClusterException


class FastRedisError(Exception):
    """Redis could not answer (connection, timeout, protocol); the caller degrades."""


class FastReplyError(FastRedisError):
    """Redis answered with an error (OOM, a script error...): it is reachable."""


CLIENT_ERRORS = (redis.RedisError, RedisClusterException)
REDIS_ERRORS = (*CLIENT_ERRORS, FastRedisError)
