"""Reconcile steps: from parsed specs and indexed cluster state to the status to write.

Pure functions (``now`` passed in); the handlers call them and the ``kube`` layer writes.
"""
