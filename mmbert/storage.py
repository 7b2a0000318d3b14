"""Where a run keeps the state it resumes from: a local folder, or an object store
(`runtime.storage: s3://bucket/prefix`, `gs://...`) through pyarrow's filesystems, the layer
Ray Train writes its checkpoints through, so that a multi-node run needs no shared disk.

S3-compatible stores other than AWS (MinIO, Ceph, a test server) are reached through the
standard `AWS_ENDPOINT_URL` variable; credentials come from the environment as the AWS SDKs
read them (AWS_ACCESS_KEY_ID, ...) and are never logged or written.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class Store:
    """A folder on a filesystem: `root` is a local path, or 'bucket/prefix' on `fs`."""

    fs: Any  # pyarrow.fs.FileSystem
    root: str
    uri: str

    @property
    def remote(self) -> bool:
        return "://" in self.uri

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def ray_storage(self) -> dict[str, Any]:
        """RunConfig's storage_path and storage_filesystem for this store."""
        return {"storage_path": self.root, "storage_filesystem": self.fs} if self.remote else {"storage_path": self.root}

    def exists(self, path: str) -> bool:
        from pyarrow.fs import FileType

        return self.fs.get_file_info(path).type != FileType.NotFound

    def size(self, path: str) -> int | None:
        from pyarrow.fs import FileType

        info = self.fs.get_file_info(path)
        return None if info.type == FileType.NotFound else info.size

    def dirs(self, parent: str, prefix: str) -> list[str]:
        """Folders directly in `parent` whose name starts with `prefix`."""
        from pyarrow.fs import FileSelector, FileType

        if not self.exists(parent):
            return []
        infos = self.fs.get_file_info(FileSelector(parent, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == FileType.Directory and i.base_name.startswith(prefix))

    def read_text(self, path: str) -> str | None:
        try:
            with self.fs.open_input_stream(path) as handle:
                return handle.read().decode("utf-8")
        except (FileNotFoundError, OSError):
            return None

    def write_text(self, path: str, text: str) -> None:
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        with self.fs.open_output_stream(path) as handle:
            handle.write(text.encode("utf-8"))

    def delete(self, path: str) -> None:
        from pyarrow.fs import FileType

        kind = self.fs.get_file_info(path).type
        if kind == FileType.Directory:
            self.fs.delete_dir(path)
        elif kind == FileType.File:
            self.fs.delete_file(path)

    def move_dir(self, source: str, target: str) -> None:
        """A rename on a disk; a copy and delete on an object store (no renames there)."""
        from pyarrow.fs import copy_files

        self.delete(target)
        if not self.remote:
            Path(source).rename(target)
            return
        copy_files(source, target, source_filesystem=self.fs, destination_filesystem=self.fs)
        self.delete(source)

    def download(self, path: str, local: Path) -> Path:
        """A folder of the store on this machine (the folder itself where the store is local)."""
        if not self.remote:
            return Path(path)
        from pyarrow.fs import LocalFileSystem, copy_files

        copy_files(path, str(local), source_filesystem=self.fs, destination_filesystem=LocalFileSystem())
        return local

    def checkpoint_step(self, folder: str) -> int | None:
        """The step a checkpoint folder holds, or None if it is incomplete (a copy cut short):
        every file its manifest lists must have the listed size (mmbert.train.state)."""
        from mmbert.train.state import MANIFEST

        try:
            files = json.loads(self.read_text(posixpath.join(folder, "state", MANIFEST)) or "null")
            if not files or any(self.size(posixpath.join(folder, name)) != size for name, size in files.items()):
                return None
            return int(json.loads(self.read_text(posixpath.join(folder, "state", "progress.json")))["step"])
        except (ValueError, KeyError, TypeError):
            return None


def open_store(uri: str) -> Store:
    """A Store for a local path or an object-store URI (s3://, gs://, ...)."""
    if "://" not in uri:
        from pyarrow.fs import LocalFileSystem

        root = str(Path(uri).resolve())
        return Store(LocalFileSystem(), root, root)
    parsed = urlparse(uri)
    root = f"{parsed.netloc}{parsed.path}".rstrip("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if parsed.scheme == "s3" and endpoint:  # an S3-compatible server: pyarrow does not read the variable
        from pyarrow.fs import S3FileSystem

        where = urlparse(endpoint)
        fs = S3FileSystem(endpoint_override=where.netloc, scheme=where.scheme or "https",
                          region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return Store(fs, root, uri)
    from pyarrow.fs import FileSystem

    fs, path = FileSystem.from_uri(uri)
    return Store(fs, path.rstrip("/"), uri)


def local_copy(store: Store, path: str) -> Path:
    """A temporary local copy of a store folder (its path where the store is local)."""
    return store.download(path, Path(tempfile.mkdtemp(prefix="mmbert-state-")) / posixpath.basename(path))


def remove_local_copy(store: Store, path: Path) -> None:
    if store.remote:
        shutil.rmtree(path.parent, ignore_errors=True)
