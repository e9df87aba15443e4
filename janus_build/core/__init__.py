"""The core every stage is built on; no stage re-implements any of it.

Layers, bottom up::

    errors, schemas            what can go wrong; the data contract (janus_build/)
    core.fsio                  atomic writes (tmp + fsync + rename, umask permissions), temp sweep
    core.lock                  one exclusive flock per stage directory, released on death
    core.stage                 StageDir (manifest, resume, lock) and ShardDir (done-markers,
                               input fingerprints); picklable for workers
    core.keys                  the one key rule (webdataset's split; injective path keys)
    core.imaging               sniff, header check, RGB decode, the one JPEG re-encoder
    core.shards                the one image-shard writer/reader and tar scanner; finding the
                               image stage behind any stage directory
    core.img2dataset           img2dataset output re-keyed into image shards
    core.procs                 worker processes that die with their parent
    fetch, tag, caption, match, balance, train, importers     the stages (each: config + run)
    cli                        the thin Typer layer

See docs/architecture.md and docs/data-contract.md.
"""
