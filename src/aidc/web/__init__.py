"""The dashboard: server-rendered frames and one small script, served by `aidc up` at `/`."""
