"""Tests of the HTTP API and the service around it (job queue, watcher, serve)."""
