"""A typed HTTP client for the aidc REST API."""

from aidc.client.http import AidcClient, ApiError, ConnectionFailed, LogChunkOut

__all__ = ["AidcClient", "ApiError", "ConnectionFailed", "LogChunkOut"]
