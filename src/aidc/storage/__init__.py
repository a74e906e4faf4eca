"""Artifacts (checkpoints, datasets, model files) and backups, as files: a content-addressed chunk store,
manifests of artifact versions, retention, and an encrypted, streamable backup format with its
create/list/verify/restore operations on a local path or an fsspec URL.

Modules, each with one job:
    errors         StorageError and its subclasses (what callers catch)
    paths          relative-path checks shared by manifests and backups (no '..', nothing absolute)
    chunks         ChunkStore: SHA-256-addressed chunks on a local directory, verified on every read
    manifests      Manifest/FileEntry, build_manifest (file or directory -> chunks), materialize
    retention      which artifact versions to delete (keep last N + best K), unreferenced chunks
    crypto         backup keys (load, generate, fingerprint) and the per-record AES-256-GCM seal
    backup_format  the archive's bytes: header, record framing, record kinds, the index
    backup_writer  BackupWriter: members in, an encrypted archive out, streamed
    backup_reader  BackupReader: members(), verify(), extract_all() that renames into place only when all is checked
    backups        create/list/verify/restore backups at a target URL (.partial, then rename)

Pure files and streams: no database, no HTTP. The services and the CLI wire these in.
"""
