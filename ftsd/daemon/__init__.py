"""Layer 6, daemon: what runs in the background of `ftsd serve`, above the facade -- jobs (the persistent job
queue and its runner threads) and watcher (Maildir changes -> index jobs)."""
