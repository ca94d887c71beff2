"""Layer 3, work: pipeline (one message -> one document), pool (worker processes), sync (one mailbox up to
date, with a CancelToken asked between mailboxes). The job queue lives above the facade, in daemon/."""
