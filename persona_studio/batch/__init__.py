"""Many avatars at once: ``persona-studio batch``, a map of the stages over one workspace per photo.

Every stage already runs headless over a self-contained workspace, so a batch is the same stage
functions the CLI calls, run for many workspaces by a local process pool (:mod:`.local`) or by Ray tasks
on a cluster (:mod:`.cluster`). What the two share lives in :mod:`.jobs`: which stages a workspace still
needs (a stage's output older than its input counts as not done, so deleting an avatar re-trains that one
and what comes after it), running one stage with its progress written to the workspace's
``batch_status.json`` (which the driver reads for the live display, on one machine or many), and the
report (:mod:`.report`: ``report.json``, a table and an HTML contact sheet).
"""
