"""Replays of GPU-cluster traces through the scheduler, and the measures of fairness.

Pure: no kopf, no Kubernetes client, no Ray; virtual time only (nothing reads the clock).
"""
