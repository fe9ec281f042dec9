"""Content-addressed blob storage (local directory or S3) behind one `BlobStore` protocol."""

from server.artifacts.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, BlobStream
from server.artifacts.storage.factory import make_blob_store

__all__ = ["CHUNK_SIZE", "BlobInfo", "BlobStore", "BlobStream", "make_blob_store"]
