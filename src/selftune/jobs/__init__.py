"""The worker: claims queued fine-tuning jobs, trains each in a child process, relays its progress.

Nothing here imports torch: the child process (:mod:`selftune.jobs.child`) does the training.
"""
