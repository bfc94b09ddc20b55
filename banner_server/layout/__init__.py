"""What the loader writes and the server reads: the key layout, shared by both sides.

keys.py      the key map (its docstring table) and Keys, the one place key names are made
catalog.py   versions, selections, status, visitor groups: what a load published
pieces.py    the selections in pieces (format 2): split, keys, compact ids, the pieced Catalog
events.py    recorded impressions, clicks and conversions: recording, export reads
retention.py the groups' registries of recorded hours: recent counters read, retention (prune)
scripts.py   the Lua scripts of lua/, read once; one way to bind them to either client
lua/         pick, record | record_click, record_conversion | switch, rollback, unlist
"""
