-- kretain state store: the full CURRENT schema (PRAGMA user_version = 6).
--
-- A fresh database is created from this file; an older one is brought here by the ordered
-- migrations in kretain/store/migrations.py. tests/store/test_migrations.py proves both give the
-- same schema. The top-level schema.sql is a symlink to this file.
--
-- Times written by kretain and by Kaltura are Unix seconds (INTEGER, UTC).
-- Nothing in this database may hold a secret (KS, admin secret, app token).

-- One row per Kaltura entry kretain has seen. Only kretain/store/transitions.py writes `state`.
CREATE TABLE entries (
    id                   TEXT PRIMARY KEY,
    partner_id           INTEGER,
    name                 TEXT,
    owner                TEXT,               -- userId
    creator_id           TEXT,
    media_type           INTEGER,
    entry_type           TEXT,               -- wire `type`: "1" or a plugin value
    source_type          TEXT,
    external_source_type TEXT,
    status               TEXT,               -- wire `status`: "2" or "virusScan.Infected"
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER,
    last_played_at       INTEGER,            -- NULL = never played
    plays                INTEGER,            -- NULL = the object carried no play data
    duration             INTEGER,
    parent_id            TEXT,
    root_entry_id        TEXT,
    capabilities         TEXT,
    categories           TEXT,
    categories_ids       TEXT,
    tags                 TEXT,
    display_in_search    INTEGER,
    raw                  TEXT,               -- JSON of the last fetched wire object
    is_quiz              INTEGER NOT NULL DEFAULT 0,
    is_external          INTEGER NOT NULL DEFAULT 0,
    policy               TEXT,               -- matched rule name, or NULL
    action               TEXT CHECK (action IN ('delete_entry', 'delete_flavors')),
    reason               TEXT,
    state                TEXT NOT NULL CHECK (state IN ('candidate', 'sized', 'downloading',
                             'archived', 'deleting', 'deleted', 'recycled', 'stripped',
                             'restoring', 'restored', 'exempt', 'kept', 'error',
                             'backup_failed', 'delete_failed', 'gone')),
    state_changed_at     INTEGER NOT NULL,
    discovered_at        INTEGER NOT NULL,
    sized_at             INTEGER,
    archived_at          INTEGER,
    deleted_at           INTEGER,
    attempts             INTEGER NOT NULL DEFAULT 0,   -- failed lookups (state error)
    backup_attempts      INTEGER NOT NULL DEFAULT 0,   -- failed backups (state backup_failed)
    delete_attempts      INTEGER NOT NULL DEFAULT 0,   -- failed deletes (state delete_failed)
    last_error           TEXT,
    lease_owner          INTEGER,            -- runs.id holding the row
    lease_expires_at     INTEGER,
    lease_from_state     TEXT,               -- state to return to when the lease expires
    bytes_total          INTEGER,            -- all assets, children included
    bytes_saved          INTEGER,            -- what the row's action frees
    asset_count          INTEGER,
    last_seen_run        INTEGER,
    refreshed_at         INTEGER,
    gone_at              INTEGER,
    exempt_by            TEXT,               -- e.g. "tag:legal-hold"
    delete_mode          TEXT CHECK (delete_mode IN ('delete', 'recycle')),
    archive_uri          TEXT,               -- the archive the backup was written to
    recycled_at          INTEGER,
    purge_at             INTEGER,            -- when Kaltura's recycle bin empties
    stripped_at          INTEGER,
    bytes_freed          INTEGER,            -- what the delete stage freed
    held_reason          TEXT,               -- why the last delete plan held the row back
    held_at              INTEGER,
    notified_at          INTEGER,            -- owner notice sent (kretain notify)
    restored_at          INTEGER,
    new_entry_id         TEXT                -- the entry a restore re-created
);
CREATE INDEX entries_state ON entries (state, action, created_at, id);
CREATE INDEX entries_claim ON entries (state, created_at, id);
CREATE INDEX entries_policy ON entries (policy);
CREATE INDEX entries_owner ON entries (owner);
CREATE INDEX entries_lease ON entries (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Every asset of an entry and of its children; entry_id is the top entry. Rows are appended
-- in the order they are sized; one compact index on (entry_id, id) serves the upsert, an
-- entry's assets and a single asset. (A table clustered by that key was slower at 1M
-- entries: its full rows are random writes across a B-tree far larger than the cache.)
CREATE TABLE assets (
    id               TEXT NOT NULL,
    entry_id         TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    owner_entry_id   TEXT,                   -- the child's id when a child entry owns it
    kind             TEXT NOT NULL CHECK (kind IN ('flavor', 'caption', 'attachment', 'thumb')),
    is_source        INTEGER NOT NULL DEFAULT 0,
    flavor_params_id INTEGER,
    status           TEXT,
    size_bytes       INTEGER NOT NULL DEFAULT 0,
    file_ext         TEXT,
    language         TEXT,
    tags             TEXT,
    raw              TEXT,
    archive_path     TEXT,
    bytes_done       INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,
    verified_at      INTEGER,
    backup_state     TEXT NOT NULL DEFAULT 'pending'
                         CHECK (backup_state IN ('pending', 'partial', 'done', 'verified',
                             'failed', 'skipped')),
    store_checksum   TEXT,                   -- the archive store's own checksum, if it has one
    removed_at       INTEGER                 -- deleted from Kaltura by kretain (a stripped flavor)
);
CREATE UNIQUE INDEX assets_key ON assets (entry_id, id);

-- Append-only history: every state move, every intent to change something in Kaltura
-- (written before the call) and its outcome (kind 'api'), owner notices, and admin actions
-- (attempts reset, exemptions lifted).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    run_id     INTEGER,
    entry_id   TEXT,
    asset_id   TEXT,
    kind       TEXT NOT NULL CHECK (kind IN ('state', 'api', 'intent', 'notice', 'admin')),
    from_state TEXT,
    to_state   TEXT,
    action     TEXT,
    outcome    TEXT,
    detail     TEXT
);
CREATE INDEX events_entry ON events (entry_id);
CREATE INDEX events_run ON events (run_id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- One row per kretain invocation that writes.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    command     TEXT NOT NULL,
    args        TEXT,                        -- JSON, secrets removed
    status      TEXT NOT NULL DEFAULT 'running',
    counts      TEXT,                        -- JSON
    pid         INTEGER,
    as_of       TEXT                         -- ISO date the policy was evaluated at
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- Discovery's createdAt windows, so a killed listing resumes at its cursor.
CREATE TABLE discovery_windows (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    generation         INTEGER NOT NULL,
    scope              TEXT NOT NULL DEFAULT 'default',
    lo                 INTEGER NOT NULL,
    hi                 INTEGER NOT NULL,
    split_field        TEXT NOT NULL DEFAULT 'createdAt',
    cursor_created_at  INTEGER,
    seen_ids_at_cursor TEXT NOT NULL DEFAULT '[]',
    total_count        INTEGER,
    status             TEXT NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'done', 'failed')),
    pages              INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER
);
CREATE UNIQUE INDEX discovery_windows_key ON discovery_windows (generation, scope, lo, hi);

-- Entries kept out of later runs by the database rather than kretain.toml: every run adds them
-- to the policy's exemptions (exempt_by "restored"). `kretain restore` records the entries it
-- brought back; `kretain unexempt ID` lifts one (an admin event each way).
CREATE TABLE exemptions (
    entry_id      TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    run_id        INTEGER,
    restored_from TEXT                   -- the entry a restore re-created this one from
);

-- One row per entry a restore worked on: how it is brought back and how that went.
CREATE TABLE restores (
    entry_id    TEXT PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    mode        TEXT NOT NULL CHECK (mode IN ('recycle_bin', 'archive', 'flavors')),
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER,
    run_id      INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,  -- runs that failed or refused
    last_error  TEXT
);

-- What a restore made in Kaltura for each original object (the entry, a multi-stream child, an
-- asset): the new object's id, the upload token holding its file and the last step done, so a
-- killed restore continues where it stopped and never makes anything twice.
CREATE TABLE restore_objects (
    entry_id     TEXT NOT NULL REFERENCES restores (entry_id) ON DELETE CASCADE,
    old_id       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('entry', 'child', 'flavor', 'caption',
                     'attachment', 'thumb')),
    owner_old_id TEXT,                   -- an asset's original owner (the entry or a child)
    new_id       TEXT,
    token_id     TEXT,
    step         TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (entry_id, old_id)
);

CREATE VIEW v_state_summary AS
SELECT state, policy, action, count(*) AS entries,
       coalesce(sum(bytes_saved), 0) AS bytes_saved, coalesce(sum(bytes_total), 0) AS bytes_total
FROM entries
GROUP BY state, policy, action;
