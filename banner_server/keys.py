"""The Redis key layout, shared by the publisher (loader) and the server.

Every key starts with a prefix (default ``banners:``) so one Redis can host
several deployments.  A load writes a complete *version* under its own keys and
then switches ``current`` in one command; readers resolve ``current`` first and
never read across two versions.

    {p}current                      string: the version being served, e.g. ``12-9f3a1c``
    {p}version_seq                  counter: the number part of the last version id
    {p}versions                     set: every version that may still have keys
    {p}history                      sorted set: the versions a load made current, scored by load
                                    order (the id's number): what `banners versions` lists and
                                    `banners rollback` may switch to (loader.publish.KEEP_VERSIONS)
    {p}load_lock                    string: the running load's token, from its start to its end;
                                    a 10 s lease renewed while it lives (loader.publish.LoadLock)
    {p}v:{ver}:meta                 hash: seed, loaded_at, data_dir, quarters, ...
    {p}v:{ver}:files                hash: sha256 -> JSON {path, quarter, kind, rows, ...}
    {p}v:{ver}:selections           string: JSON of `banners show --json`
    {p}v:{ver}:q:{q}:campaigns      set: campaign ids that have a selection in quarter q
    {p}v:{ver}:q:{q}:c:{c}          set: the selection's banner ids (SRANDMEMBER)
    {p}v:{ver}:q:{q}:c:{c}:z        sorted set: banner id -> revenue (the scores kept)
    {p}vis:{visitor}                string: the visitor's last banner (TTL)
"""

DEFAULT_PREFIX = "banners:"


class Keys:
    def __init__(self, prefix: str = DEFAULT_PREFIX):
        self.prefix = prefix
        self.current = prefix + "current"
        self.version_seq = prefix + "version_seq"
        self.versions = prefix + "versions"
        self.history = prefix + "history"
        self.load_lock = prefix + "load_lock"

    def version(self, ver: str) -> str:
        return f"{self.prefix}v:{ver}:"

    def meta(self, ver: str) -> str:
        return self.version(ver) + "meta"

    def files(self, ver: str) -> str:
        return self.version(ver) + "files"

    def selections(self, ver: str) -> str:
        return self.version(ver) + "selections"

    def campaigns(self, ver: str, quarter: int) -> str:
        return f"{self.version(ver)}q:{quarter}:campaigns"

    def selection_set(self, ver: str, quarter: int, campaign: int) -> str:
        return f"{self.version(ver)}q:{quarter}:c:{campaign}"

    def selection_zset(self, ver: str, quarter: int, campaign: int) -> str:
        return self.selection_set(ver, quarter, campaign) + ":z"

    def visitor(self, visitor: str) -> str:
        return f"{self.prefix}vis:{visitor}"
